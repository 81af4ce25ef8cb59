//! The mailer: delivers what the outbox holds, by SMTP when `KEYPLANE_SMTP_URL` is set,
//! else to the development mailbox when it is on (`keyplane up`), else nowhere (a warning
//! per mail: a deployment that verifies addresses must configure SMTP).

use std::sync::Arc;

use keyplane_common::{mail::OutgoingMail, outbox};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};

use crate::store::Store;

enum Transport {
    Smtp { transport: Box<AsyncSmtpTransport<Tokio1Executor>>, from: Mailbox },
    DevMailbox,
    Nowhere,
}

pub struct Mailer {
    transport: Transport,
    store: Store,
}

/// How the mailer is configured, checked at start-up.
#[derive(Clone, Debug, Default)]
pub struct MailSettings {
    /// `smtps://user:pass@host:465`, `smtp://host:587?tls=required`, …
    pub smtp_url: Option<String>,
    pub from: String,
    pub dev_mailbox: bool,
}

impl Mailer {
    pub fn new(settings: &MailSettings, store: Store) -> anyhow::Result<Self> {
        let transport = match &settings.smtp_url {
            Some(url) => Transport::Smtp {
                transport: Box::new(
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                        .map_err(|e| anyhow::anyhow!("KEYPLANE_SMTP_URL: {e}"))?
                        .timeout(Some(std::time::Duration::from_secs(10)))
                        .build(),
                ),
                from: settings.from.parse().map_err(|e| anyhow::anyhow!("KEYPLANE_MAIL_FROM: {e}"))?,
            },
            None if settings.dev_mailbox => Transport::DevMailbox,
            None => {
                tracing::warn!("no mailer configured (KEYPLANE_SMTP_URL): verification and invitation mail is dropped");
                Transport::Nowhere
            }
        };
        Ok(Self { transport, store })
    }

    /// Sends one mail. An error is worth a retry; a mail that can never be sent (a bad
    /// address, a permanent refusal) is logged and dropped.
    async fn deliver(&self, mail: OutgoingMail) -> Result<(), String> {
        match &self.transport {
            Transport::Smtp { transport, from } => {
                let Ok(to) = mail.to.parse::<Mailbox>() else {
                    tracing::warn!(mail_id = %mail.id, "mail to an address SMTP cannot take; dropped");
                    return Ok(());
                };
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject.clone())
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body.clone())
                    .map_err(|e| e.to_string())?;
                match transport.send(message).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_permanent() => {
                        tracing::warn!(mail_id = %mail.id, error = %e, "mail refused for good; dropped");
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Transport::DevMailbox => self.store.keep_dev_mail(&mail).await.map_err(|e| e.to_string()),
            Transport::Nowhere => {
                tracing::warn!(mail_id = %mail.id, kind = mail.kind.as_str(), "no mailer configured; mail dropped");
                Ok(())
            }
        }
    }

    /// The outbox relay's delivery: one mail after another, stopping at the first failure
    /// so the rest are retried.
    pub fn deliver_fn(self: Arc<Self>) -> outbox::Deliver {
        Arc::new(move |payloads| {
            let mailer = Arc::clone(&self);
            Box::pin(async move {
                for payload in payloads {
                    match serde_json::from_value::<OutgoingMail>(payload) {
                        Ok(mail) => mailer.deliver(mail).await?,
                        Err(e) => tracing::error!(error = %e, "a queued mail cannot be read; dropped"),
                    }
                }
                Ok(())
            })
        })
    }
}

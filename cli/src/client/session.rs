//! The signed-in session, kept between runs in the user's config directory. Its tokens act
//! as the user, so only the user may read the file (mode 0600, in a 0700 directory).

use std::{
    fs::{self, File, OpenOptions},
    io::{ErrorKind, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::PathBuf,
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    /// The gateway the tokens were issued by: they are never sent anywhere else.
    pub url: String,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
    /// The user's developer org once known (signup, `orgs ensure`): the default `--org`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_org_id: Option<String>,
}

/// Where the session lives: `$XDG_CONFIG_HOME/keyplane/` or `~/.config/keyplane/`.
#[derive(Clone, Debug)]
pub struct SessionFile {
    dir: PathBuf,
}

impl SessionFile {
    pub fn locate() -> Result<Self> {
        // The XDG spec ignores a relative XDG_CONFIG_HOME.
        let config = match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
            Some(dir) if dir.is_absolute() => dir,
            _ => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".config"),
                None => bail!("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the session"),
            },
        };
        Ok(Self::in_dir(config.join("keyplane")))
    }

    pub fn in_dir(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("session.json")
    }

    pub fn load(&self) -> Result<Option<Session>> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{} is not a session: run `keyplane login` again", path.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes a temporary file created 0600 and renames it over the session, so that no
    /// reader ever sees half a file and the tokens are never readable by others, not even
    /// for a moment.
    pub fn save(&self, session: &Session) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.path();
        let temporary = self.dir.join(format!(".session.json.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
            // A file left by an older run may have been created with another mode.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(&serde_json::to_vec_pretty(session).expect("a session serializes"))?;
            file.sync_all()?;
            fs::rename(&temporary, &path)
        };
        write()
            .inspect_err(|_| drop(fs::remove_file(&temporary)))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn delete(&self) -> Result<()> {
        match fs::remove_file(self.path()) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot delete {}", self.path().display()))
            }
            _ => Ok(()),
        }
    }

    /// Held while the tokens are refreshed: a refresh token is good once, and a second
    /// `keyplane` refreshing with the same one would end the whole session (reuse is
    /// taken as theft). Released when the answered file is dropped.
    pub fn lock(&self) -> Result<File> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let path = self.dir.join("session.lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(file)
    }
}

//! Every log line the platforms of this test binary write, at debug level for Keyplane's
//! own crates, in the JSON format of production (`KEYPLANE_LOG_FORMAT=json`), kept in
//! memory so a test can search them for what must never be logged.

use std::{
    io::Write,
    sync::{Mutex, OnceLock},
};

use tracing_subscriber::{EnvFilter, Layer, fmt::MakeWriter};

/// Beyond this the capture stops growing (a test binary's logs are far smaller).
const MAX_BYTES: usize = 256 * 1024 * 1024;

fn captured() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(Mutex::default)
}

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut logs = captured().lock().expect("log capture");
        if logs.len() + bytes.len() <= MAX_BYTES {
            logs.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        Capture
    }
}

/// The layer the test binary's subscriber carries beside the console.
pub fn capture_layer() -> keyplane_common::telemetry::ExtraLayer {
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_writer(Capture)
        .with_ansi(false)
        .with_filter(EnvFilter::new("keyplane=debug,tower_http=debug"))
        .boxed()
}

/// Every line logged so far by every platform of this test binary.
pub fn all() -> String {
    String::from_utf8_lossy(&captured().lock().expect("log capture")).into_owned()
}

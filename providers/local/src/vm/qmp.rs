//! A minimal QMP (QEMU Machine Protocol) client: one connection per command over the VM's
//! unix socket — read the greeting, negotiate capabilities, run the command, return its
//! `return` value. Events that arrive in between are skipped.
//!
//! ```no_run
//! # async fn f() -> Result<(), datum_provider_local::vm::Error> {
//! let status = datum_provider_local::vm::qmp::execute("/run/vm/qmp.sock".as_ref(), "query-status").await?;
//! assert_eq!(status["status"], "running");
//! # Ok(()) }
//! ```

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::Error;

/// How long one exchange may take before the VM counts as unresponsive.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `command` (without arguments) on the QMP socket at `socket`.
pub async fn execute(socket: &Path, command: &str) -> Result<Value, Error> {
    let socket: PathBuf = socket.to_path_buf();
    let command = command.to_owned();
    let fail_socket = socket.clone();
    tokio::task::spawn_blocking(move || exchange(&socket, &command))
        .await
        .map_err(|e| Error::Qmp {
            socket: fail_socket,
            message: e.to_string(),
        })?
}

fn exchange(socket: &Path, command: &str) -> Result<Value, Error> {
    let fail = |message: String| Error::Qmp {
        socket: socket.to_path_buf(),
        message,
    };
    let stream = UnixStream::connect(socket).map_err(|e| fail(format!("connect: {e}")))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| fail(format!("set timeouts: {e}")))?;
    let mut writer = stream
        .try_clone()
        .map_err(|e| fail(format!("clone the socket: {e}")))?;
    let mut reader = BufReader::new(stream);
    let greeting = read_message(&mut reader).map_err(fail)?;
    if greeting.get("QMP").is_none() {
        return Err(fail(format!("unexpected greeting {greeting}")));
    }
    for execute in ["qmp_capabilities", command] {
        let request = json!({ "execute": execute }).to_string() + "\n";
        writer
            .write_all(request.as_bytes())
            .map_err(|e| fail(format!("send {execute}: {e}")))?;
        let reply = loop {
            let message = read_message(&mut reader).map_err(fail)?;
            if message.get("event").is_none() {
                break message;
            }
        };
        if let Some(error) = reply.get("error") {
            return Err(fail(format!("{execute} failed: {error}")));
        }
        if execute == command {
            return Ok(reply.get("return").cloned().unwrap_or(Value::Null));
        }
    }
    Ok(Value::Null)
}

fn read_message(reader: &mut impl BufRead) -> Result<Value, String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Err("the connection closed".to_owned()),
        Ok(_) => serde_json::from_str(&line).map_err(|e| format!("bad message: {e}")),
        Err(e) => Err(format!("read: {e}")),
    }
}

//! Finding executables, free ports and scratch directories.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use crate::error::{Result, TestkitError, io_error};

/// Variable that can name the `redis-server` executable.
pub const REDIS_SERVER_ENV: &str = "TESTKIT_REDIS_SERVER";
/// Variable that can name the `redis-cli` executable.
pub const REDIS_CLI_ENV: &str = "TESTKIT_REDIS_CLI";
/// Variable that can name the `redis-sentinel` executable (Debian's `redis-sentinel` package).
pub const REDIS_SENTINEL_ENV: &str = "TESTKIT_REDIS_SENTINEL";

/// The port of the machine's shared Redis, which tests must never touch.
const SHARED_REDIS_PORT: u16 = 6379;

/// Finds `program` through `env_var` or on `PATH`.
pub(crate) fn executable(program: &'static str, env_var: &'static str) -> Result<PathBuf> {
    let not_found = || TestkitError::ExecutableNotFound { program, env_var };
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(not_found()) };
    }
    let path = std::env::var_os("PATH").ok_or_else(not_found)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(not_found)
}

/// A loopback port nobody listens on right now (never 6379). Another process may take it before
/// we do; callers retry when the server reports the address in use.
pub(crate) fn free_port() -> Result<u16> {
    loop {
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(io_error("binding a free loopback port"))?;
        let port = listener.local_addr().map_err(io_error("reading a bound port"))?.port();
        if port != SHARED_REDIS_PORT {
            return Ok(port);
        }
    }
}

/// A directory removed when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub(crate) fn new(label: &str) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("infra-testkit-{}-{label}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|source| TestkitError::TempDir { path: path.clone(), source })?;
        Ok(Self { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The last `lines` lines of a file, for error messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

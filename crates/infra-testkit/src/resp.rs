//! A minimal blocking RESP2 client: enough to probe, configure and poke a server from a test
//! without the code under test being involved.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    time::Duration,
};

use crate::error::{Result, TestkitError, io_error};

/// A reply from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$...`, `None` for a nil bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*...`, `None` for a nil array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for status and bulk replies.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Status(s) => Some(s.clone()),
            Self::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// One connection to a server, authenticated if credentials are given.
#[derive(Debug)]
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to `127.0.0.1:port` and authenticates with `auth` (`(user, password)`).
    pub fn open(port: u16, auth: Option<(&str, &str)>, timeout: Duration) -> Result<Self> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(io_error(format!("connecting to {addr}")))?;
        stream.set_read_timeout(Some(timeout)).map_err(io_error("setting a read timeout"))?;
        stream.set_write_timeout(Some(timeout)).map_err(io_error("setting a write timeout"))?;
        stream.set_nodelay(true).map_err(io_error("setting TCP_NODELAY"))?;
        let mut connection = Self { reader: BufReader::new(stream) };
        if let Some((user, password)) = auth {
            connection.command_ok(&["AUTH", user, password])?;
        }
        Ok(connection)
    }

    /// Sends one command and reads its reply (an error reply is returned as [`Reply::Error`]).
    pub fn command(&mut self, args: &[&str]) -> Result<Reply> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.command_bytes(&args)
    }

    /// [`command`](Self::command) with binary arguments (values that are not UTF-8 text, as a
    /// foreign client may write them).
    pub fn command_bytes(&mut self, args: &[&[u8]]) -> Result<Reply> {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg);
            frame.extend_from_slice(b"\r\n");
        }
        let name = String::from_utf8_lossy(args.first().copied().unwrap_or_default()).into_owned();
        self.reader.get_mut().write_all(&frame).map_err(io_error(format!("sending {name}")))?;
        self.read_reply().map_err(io_error(format!("reading the reply to {name}")))
    }

    /// Sends one command and turns an error reply into [`TestkitError::Reply`].
    pub fn command_ok(&mut self, args: &[&str]) -> Result<Reply> {
        match self.command(args)? {
            Reply::Error(message) => Err(TestkitError::Reply {
                // AUTH arguments are secrets: never echo them.
                command: if args.first().is_some_and(|a| a.eq_ignore_ascii_case("AUTH")) {
                    "AUTH ***".to_owned()
                } else {
                    args.join(" ")
                },
                message,
            }),
            reply => Ok(reply),
        }
    }

    fn read_reply(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_at(line.len().min(1));
        let number = || {
            rest.parse::<i64>()
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad length `{rest}`")))
        };
        Ok(match kind {
            "+" => Reply::Status(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Integer(number()?),
            "$" => match usize::try_from(number()?) {
                Ok(len) => {
                    let mut bytes = vec![0; len + 2];
                    self.reader.read_exact(&mut bytes)?;
                    bytes.truncate(len);
                    Reply::Bulk(Some(bytes))
                }
                Err(_) => Reply::Bulk(None),
            },
            "*" => match usize::try_from(number()?) {
                Ok(len) => Reply::Array(Some((0..len).map(|_| self.read_reply()).collect::<std::io::Result<_>>()?)),
                Err(_) => Reply::Array(None),
            },
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("unexpected reply line `{line}`"),
                ));
            }
        })
    }
}

//! Connection commands: PING ECHO HELLO AUTH QUIT SELECT CLIENT COMMAND.

use bytes::Bytes;
use fulcrum_proto::{Frame, Protocol};

use super::args::{int, is};
use super::table::COMMANDS;
use super::{CmdError, CmdResult, Ctx};

fn bulk(s: impl ToString) -> Frame {
    Frame::Bulk(Bytes::from(s.to_string()))
}

pub fn ping(a: &[Bytes]) -> CmdResult {
    match a {
        [] => Ok(Frame::Simple("PONG".into())),
        [msg] => Ok(Frame::Bulk(msg.clone())),
        _ => Err(CmdError::WrongArity("PING")),
    }
}

pub fn echo(a: &[Bytes]) -> CmdResult {
    Ok(Frame::Bulk(a[0].clone()))
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`
pub fn hello(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut proto = ctx.conn.protocol;
    if let Some(ver) = a.first() {
        proto = match int(ver) {
            Ok(2) => Protocol::Resp2,
            Ok(3) => Protocol::Resp3,
            Ok(_) => return Err(CmdError::Raw("NOPROTO unsupported protocol version".into())),
            Err(_) => {
                return Err(CmdError::Msg(
                    "Protocol version is not an integer or out of range".into(),
                ))
            }
        };
    }
    let mut i = 1;
    let mut name = None;
    while i < a.len() {
        if is(&a[i], "AUTH") && i + 2 < a.len() {
            return Err(no_password());
        } else if is(&a[i], "SETNAME") && i + 1 < a.len() {
            name = Some(a[i + 1].clone());
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if let Some(n) = name {
        validate_client_name(&n)?;
        ctx.conn.name = Some(n);
    }
    ctx.conn.protocol = proto;
    let ver = match proto {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    };
    Ok(Frame::Map(vec![
        (bulk("server"), bulk("fulcrum")),
        (bulk("version"), bulk(crate::VERSION)),
        (bulk("proto"), Frame::Integer(ver)),
        (bulk("id"), Frame::Integer(ctx.conn.id as i64)),
        (bulk("mode"), bulk("cluster")),
        (bulk("role"), bulk("master")),
        (bulk("modules"), Frame::Array(vec![])),
    ]))
}

fn no_password() -> CmdError {
    CmdError::Msg(
        "AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?"
            .into(),
    )
}

pub fn auth(a: &[Bytes]) -> CmdResult {
    if a.len() > 2 {
        return Err(CmdError::Syntax);
    }
    Err(no_password())
}

pub fn quit(ctx: &mut Ctx<'_>) -> CmdResult {
    ctx.conn.quit = true;
    Ok(Frame::ok())
}

pub fn select(a: &[Bytes]) -> CmdResult {
    match int(&a[0]) {
        Ok(0) => Ok(Frame::ok()),
        Ok(_) => Err(CmdError::Msg(
            "DB index is out of range (Fulcrum has database 0; use USE for keyspaces)".into(),
        )),
        Err(e) => Err(e),
    }
}

fn validate_client_name(name: &[u8]) -> Result<(), CmdError> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(CmdError::Msg(
            "Client names cannot contain spaces, newlines or special characters.".into(),
        ));
    }
    Ok(())
}

/// `CLIENT ID | GETNAME | SETNAME name | SETINFO attr value | INFO`
pub fn client(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let sub = &a[0];
    if is(sub, "ID") && a.len() == 1 {
        Ok(Frame::Integer(ctx.conn.id as i64))
    } else if is(sub, "GETNAME") && a.len() == 1 {
        Ok(ctx.conn.name.clone().map_or(Frame::Null, Frame::Bulk))
    } else if is(sub, "SETNAME") && a.len() == 2 {
        validate_client_name(&a[1])?;
        ctx.conn.name = (!a[1].is_empty()).then(|| a[1].clone());
        Ok(Frame::ok())
    } else if is(sub, "SETINFO") && a.len() == 3 {
        // Client libraries announce themselves; accepted and not stored.
        Ok(Frame::ok())
    } else if is(sub, "INFO") && a.len() == 1 {
        let name = ctx
            .conn
            .name
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        Ok(Frame::Verbatim(
            "txt".into(),
            Bytes::from(format!(
                "id={} name={} db=0 keyspace={} resp={}\n",
                ctx.conn.id,
                name,
                ctx.conn.keyspace,
                if ctx.conn.protocol == Protocol::Resp3 {
                    3
                } else {
                    2
                }
            )),
        ))
    } else if ["ID", "GETNAME", "SETNAME", "SETINFO", "INFO"]
        .iter()
        .any(|s| is(sub, s))
    {
        Err(CmdError::subcommand_arity("CLIENT", sub))
    } else {
        Err(CmdError::unknown_subcommand(sub, "CLIENT HELP"))
    }
}

fn command_info(spec: &super::table::Spec) -> Frame {
    Frame::Array(vec![
        bulk(spec.name.to_ascii_lowercase()),
        Frame::Integer(i64::from(spec.arity)),
        Frame::Set(
            spec.flags
                .iter()
                .map(|f| Frame::Simple((*f).into()))
                .collect(),
        ),
        Frame::Integer(i64::from(spec.first_key)),
        Frame::Integer(i64::from(spec.last_key)),
        Frame::Integer(i64::from(spec.step)),
    ])
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO name...`, `COMMAND DOCS`:
/// enough for redis-cli and client libraries.
pub fn command(a: &[Bytes]) -> CmdResult {
    let Some(sub) = a.first() else {
        return Ok(Frame::Array(COMMANDS.iter().map(command_info).collect()));
    };
    if is(sub, "COUNT") {
        Ok(Frame::Integer(COMMANDS.len() as i64))
    } else if is(sub, "INFO") {
        Ok(Frame::Array(
            a[1..]
                .iter()
                .map(|n| super::table::lookup(n).map_or(Frame::NullArray, command_info))
                .collect(),
        ))
    } else if is(sub, "DOCS") {
        Ok(Frame::Map(vec![]))
    } else if is(sub, "LIST") {
        Ok(Frame::Array(
            COMMANDS
                .iter()
                .map(|s| bulk(s.name.to_ascii_lowercase()))
                .collect(),
        ))
    } else {
        Err(CmdError::unknown_subcommand(sub, "COMMAND HELP"))
    }
}

//! Enrichment: what a line means beyond its own text. The `[exec=… sym=…]`
//! context prefix, and the per-source state that gives a breaker change its
//! `old_state` and keeps local times from running backwards in the autumn hour.
//!
//! The state itself (`event::SourceState`) is a plain serialisable value, so
//! the sink can commit it beside the offsets and a restart resumes with the
//! same `old_state`.

/// The context prefix the engine puts before some messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context<'a> {
    /// `exec=`
    pub execution_id: Option<&'a str>,
    /// `sym=`
    pub symbol: Option<&'a str>,
}

/// Splits `[exec=<id> sym=<SYM>] rest` into the context and `rest`. Either key
/// may be absent; anything else in the brackets means it is not a context prefix.
pub fn split_context(message: &str) -> (Context<'_>, &str) {
    let none = (Context::default(), message);
    let Some(body) = message.strip_prefix('[') else {
        return none;
    };
    let Some(close) = body.find(']') else {
        return none;
    };
    let rest = &body[close + 1..];
    let Some(rest) = rest
        .strip_prefix(' ')
        .or(if rest.is_empty() { Some("") } else { None })
    else {
        return none;
    };
    let mut ctx = Context::default();
    let mut any = false;
    for token in body[..close].split_whitespace() {
        if let Some(v) = token.strip_prefix("exec=") {
            ctx.execution_id = Some(v).filter(|v| !v.is_empty());
        } else if let Some(v) = token.strip_prefix("sym=") {
            ctx.symbol = Some(v).filter(|v| !v.is_empty());
        } else {
            return none;
        }
        any = true;
    }
    if !any {
        return none;
    }
    (ctx, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prefix_variants() {
        let (c, r) = split_context("[exec=8f14 sym=SPY] Trailing stop UPDATED: x");
        assert_eq!(
            (c.execution_id, c.symbol, r),
            (Some("8f14"), Some("SPY"), "Trailing stop UPDATED: x")
        );
        let (c, r) = split_context("[sym=QQQ] Entry allowed");
        assert_eq!(
            (c.execution_id, c.symbol, r),
            (None, Some("QQQ"), "Entry allowed")
        );
        let (c, r) = split_context("[exec=abc] m");
        assert_eq!((c.execution_id, c.symbol, r), (Some("abc"), None, "m"));
    }

    #[test]
    fn brackets_that_are_not_context() {
        for m in [
            "[WARN] Circuit breaker",
            "[] x",
            "[exec=1 foo=2] x",
            "[exec=1]x",
            "no prefix",
        ] {
            let (c, r) = split_context(m);
            assert_eq!((c, r), (Context::default(), m), "{m}");
        }
    }
}

//! Who owns a run: the harness process, as the `pid/start-time` token of its owner label (read
//! from `/proc`), whether it still runs, and a line saying who it is. Pure reads of `/proc`:
//! both the engine (which labels what it creates) and the cleanup (which sweeps what dead
//! owners left) use it.

/// This process as an owner label: `pid/start-time` (clock ticks since boot, `/proc/self/stat`
/// field 22), so that a reused pid does not look like a live owner.
pub(crate) fn owner_token(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let after = &stat[stat.rfind(')')? + 2..];
    let start = after.split_whitespace().nth(19)?;
    Some(format!("{pid}/{start}"))
}

/// Whether the process an owner label names still runs.
pub(crate) fn owner_alive(token: &str) -> bool {
    let Some(pid) = token.split('/').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    owner_token(pid).as_deref() == Some(token)
}

/// Who owns a run, for people: `pid 812: shakedown up scenarios/steady-state.yaml` while the
/// owner lives (`/proc/PID/cmdline`, the program's file name only), `None` once it is gone.
pub(super) fn owner_described(token: &str) -> Option<String> {
    if !owner_alive(token) {
        return None;
    }
    let pid = token.split('/').next()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(String::from_utf8_lossy);
    let program = args.next()?;
    let program = program.rsplit('/').next().unwrap_or_default().to_string();
    let words: Vec<String> = std::iter::once(program).chain(args.map(|a| a.into_owned())).collect();
    Some(format!("pid {pid}: {}", words.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_owner_is_not() {
        let me = owner_token(std::process::id()).expect("/proc/self/stat");
        assert!(owner_alive(&me));
        let (pid, start) = me.split_once('/').unwrap();
        let later: u64 = start.parse::<u64>().unwrap() + 1;
        assert!(!owner_alive(&format!("{pid}/{later}")), "a reused pid with another start time is dead");
        assert!(!owner_alive("4194304/1"));
        assert!(!owner_alive("garbage"));
        let described = owner_described(&me).expect("this process is alive");
        assert!(described.starts_with(&format!("pid {pid}: ")), "{described}");
        assert_eq!(owner_described(&format!("{pid}/{later}")), None);
    }
}

//! Inspection of a server through its data directory's `postmaster.pid` and
//! `/proc`, without connecting to it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Error;

/// The lines of `postmaster.pid` that sandtable reads, as PostgreSQL's
/// `src/include/utils/pidfile.h` numbers them (from 1).
const LINE_PID: usize = 1;
const LINE_SOCKET_DIR: usize = 5;
const LINE_SHMEM_KEY: usize = 7;

/// The contents of a data directory's `postmaster.pid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PostmasterPid {
    pub(crate) pid: i32,
    /// The first socket directory, when the server listens on one.
    pub(crate) socket_dir: Option<PathBuf>,
    /// The System V shared memory id, which the server writes once it has
    /// created its shared memory.
    pub(crate) shmid: Option<i64>,
}

impl PostmasterPid {
    /// Reads `<data_dir>/postmaster.pid`, returning `None` when it is missing
    /// or still empty (the server has just begun writing it).
    pub(crate) fn read(data_dir: &Path) -> Result<Option<Self>, Error> {
        let path = data_dir.join("postmaster.pid");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::io("read", path, source)),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let line = |number: usize| text.lines().nth(number - 1).map(str::trim);

        let pid = line(LINE_PID)?.parse().ok()?;
        let socket_dir = line(LINE_SOCKET_DIR)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from);
        // The line contains the key and the id, such as "  5432001    32768".
        let shmid = line(LINE_SHMEM_KEY)
            .and_then(|fields| fields.split_whitespace().nth(1))
            .and_then(|id| id.parse().ok());
        Some(PostmasterPid {
            pid,
            socket_dir,
            shmid,
        })
    }

    /// Returns whether the process `pid` is a live `postgres` process. A
    /// zombie counts as dead: it keeps its pid until its parent reaps it,
    /// which for a daemonized postmaster may take a while.
    pub(crate) fn is_alive(&self) -> bool {
        let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return false;
        };
        // The format is "pid (comm) state ...", and comm may contain spaces
        // or parentheses, so it ends at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            return false;
        };
        let command = &stat[open + 1..close];
        let state = stat[close + 1..].trim_start().chars().next();
        matches!(command, "postgres" | "postmaster") && !matches!(state, Some('Z' | 'X') | None)
    }
}

/// Returns how many processes are attached to System V shared memory
/// segment `shmid`, or `None` when no such segment exists.
pub(crate) fn shm_attached(shmid: i64) -> Result<Option<u64>, Error> {
    let path = Path::new("/proc/sysvipc/shm");
    let table = fs::read_to_string(path).map_err(|source| Error::io("read", path, source))?;
    Ok(parse_shm_attached(&table, shmid))
}

fn parse_shm_attached(table: &str, shmid: i64) -> Option<u64> {
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let id_column = header.iter().position(|name| *name == "shmid")?;
    let attached_column = header.iter().position(|name| *name == "nattch")?;

    lines.find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(id_column)?.parse::<i64>().ok()? != shmid {
            return None;
        }
        fields.get(attached_column)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID_FILE: &str = "\
4242
/var/lib/sandtable/0123456789abcdef/data
1733300000
5432
/var/lib/sandtable/0123456789abcdef/run

  5432001        17
ready   
";

    #[test]
    fn pid_file_parses_all_fields() {
        let parsed = PostmasterPid::parse(PID_FILE).unwrap();

        assert_eq!(parsed.pid, 4242);
        assert_eq!(
            parsed.socket_dir.as_deref(),
            Some(Path::new("/var/lib/sandtable/0123456789abcdef/run"))
        );
        assert_eq!(parsed.shmid, Some(17));
    }

    #[test]
    fn pid_file_written_halfway_parses() {
        let parsed = PostmasterPid::parse("4242\n/data\n").unwrap();

        assert_eq!(parsed.pid, 4242);
        assert_eq!(parsed.socket_dir, None);
        assert_eq!(parsed.shmid, None);
    }

    #[test]
    fn pid_file_empty_is_none() {
        assert_eq!(PostmasterPid::parse(""), None);
        assert_eq!(PostmasterPid::parse("\n"), None);
    }

    #[test]
    fn own_process_is_not_postgres() {
        let me = PostmasterPid {
            pid: std::process::id() as i32,
            socket_dir: None,
            shmid: None,
        };

        assert!(!me.is_alive());
    }

    #[test]
    fn shm_table_finds_segment() {
        let table = "\
       key      shmid perms                  size  cpid  lpid nattch   uid   gid
   5432001         17   600                    56  4242  4250      3   105   110
         0         18   600                  1024   100   100      0     0     0
";
        assert_eq!(parse_shm_attached(table, 17), Some(3));
        assert_eq!(parse_shm_attached(table, 18), Some(0));
        assert_eq!(parse_shm_attached(table, 19), None);
    }
}

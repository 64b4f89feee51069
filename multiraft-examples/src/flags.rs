//! The command-line flags of the example programs: `--name value` pairs and bare switches.

/// The program's arguments, read flag by flag.
#[derive(Debug)]
pub struct Flags {
    args: std::vec::IntoIter<String>,
}

impl Flags {
    /// The arguments this process was started with, after the program name.
    pub fn from_env() -> Flags {
        Flags::new(std::env::args().skip(1).collect())
    }

    /// Flags from a list (for tests).
    pub fn new(args: Vec<String>) -> Flags {
        Flags {
            args: args.into_iter(),
        }
    }

    /// The next flag's name, or `None` at the end.
    pub fn next_flag(&mut self) -> Option<String> {
        self.args.next()
    }

    /// The value following `flag`.
    pub fn value(&mut self, flag: &str) -> Result<String, String> {
        self.args.next().ok_or(format!("{flag} needs a value"))
    }

    /// The value following `flag`, as a number.
    pub fn number(&mut self, flag: &str) -> Result<u64, String> {
        let value = self.value(flag)?;
        value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))
    }
}

/// The error for a flag a program does not know.
pub fn unknown(flag: &str) -> String {
    format!("unknown flag {flag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_numbers_and_reports_what_is_missing() {
        let mut f = Flags::new(
            ["--n", "12", "--name", "x", "--n", "y", "--last"]
                .map(String::from)
                .to_vec(),
        );
        assert_eq!(f.next_flag().as_deref(), Some("--n"));
        assert_eq!(f.number("--n"), Ok(12));
        assert_eq!(f.next_flag().as_deref(), Some("--name"));
        assert_eq!(f.value("--name").as_deref(), Ok("x"));
        assert_eq!(f.next_flag().as_deref(), Some("--n"));
        assert_eq!(f.number("--n"), Err("--n: not a number: y".to_string()));
        assert_eq!(f.next_flag().as_deref(), Some("--last"));
        assert_eq!(f.value("--last"), Err("--last needs a value".to_string()));
        assert_eq!(f.next_flag(), None);
    }
}

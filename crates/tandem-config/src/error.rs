use std::fmt;

/// One thing wrong with a config, at one key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Key path such as `pool[0].backend[1].weight`; empty for the whole file.
    pub path: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

/// Everything wrong with a config file. Displays one line per problem:
/// `FILE:LINE: KEY.PATH: what is wrong`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    pub fn new(origin: &str, problems: Vec<Problem>) -> Self {
        ConfigError {
            origin: origin.to_string(),
            problems,
        }
    }

    pub fn single(origin: &str, path: &str, message: impl Into<String>) -> Self {
        Self::new(
            origin,
            vec![Problem {
                path: path.to_string(),
                line: None,
                message: message.into(),
            }],
        )
    }

    pub(crate) fn from_toml(origin: &str, path: &str, err: &toml::de::Error, text: &str) -> Self {
        let line = err
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        // toml's own message carries a source excerpt over several lines; the first line is
        // the part that matters in a one-line-per-problem report.
        let message = err
            .message()
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        Self::new(
            origin,
            vec![Problem {
                path: path.trim_start_matches('.').to_string(),
                line,
                message,
            }],
        )
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.origin)?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if !p.path.is_empty() {
                write!(f, ": {}", p.path)?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

//! `infra/local.env`: the single file of local defaults, each overridable from the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `infra/local`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn local_env_path() -> PathBuf {
    std::env::var_os("LOCAL_ENV_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("infra/local.env"))
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected KEY=VALUE")]
    Syntax { path: PathBuf, line: usize },
}

/// The local settings: the file's values, overridden by the environment, with `${NAME}` expanded.
#[derive(Debug, Clone)]
pub struct LocalEnv {
    vars: BTreeMap<String, String>,
}

impl LocalEnv {
    pub fn load() -> Result<Self, EnvError> {
        let path = local_env_path();
        let text = std::fs::read_to_string(&path).map_err(|source| EnvError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path, |k| std::env::var(k).ok())
    }

    fn parse(
        text: &str,
        path: &Path,
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, EnvError> {
        let mut vars = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').ok_or(EnvError::Syntax {
                path: path.to_owned(),
                line: i + 1,
            })?;
            let key = key.trim().to_owned();
            let value = match environment(&key) {
                Some(v) => v,
                None => expand(value.trim(), &vars, &environment),
            };
            vars.insert(key, value);
        }
        Ok(Self { vars })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// A setting the stack cannot run without; the message names it.
    pub fn require(&self, key: &str) -> Result<&str, String> {
        self.get(key)
            .ok_or_else(|| format!("{key} is not set in infra/local.env or the environment"))
    }

    pub fn port(&self, key: &str) -> Result<u16, String> {
        self.require(key)?
            .parse()
            .map_err(|_| format!("{key} is not a port number"))
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Exports every setting into this process's environment, where the handlers' own
    /// `from_env` and the AWS SDK read them. Call before any thread is started.
    pub fn export(&self) {
        for (k, v) in &self.vars {
            std::env::set_var(k, v);
        }
    }

    /// A path setting, relative to the repository root unless absolute.
    pub fn path(&self, key: &str) -> Result<PathBuf, String> {
        let p = PathBuf::from(self.require(key)?);
        Ok(if p.is_absolute() {
            p
        } else {
            repo_root().join(p)
        })
    }
}

fn expand(
    value: &str,
    defined: &BTreeMap<String, String>,
    environment: &impl Fn(&str) -> Option<String>,
) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find('}') {
            Some(end) => {
                let name = &rest[start + 2..start + 2 + end];
                let v = defined.get(name).cloned().or_else(|| environment(name));
                out.push_str(&v.unwrap_or_default());
                rest = &rest[start + 3 + end..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_and_expansion_sees_the_override() {
        let text = "# c\nPORT=3000\nURL=http://127.0.0.1:${PORT}/x\nKEEP=a=b\n";
        let env =
            LocalEnv::parse(text, Path::new("t"), |k| (k == "PORT").then(|| "9".into())).unwrap();
        assert_eq!(env.get("PORT"), Some("9"));
        assert_eq!(env.get("URL"), Some("http://127.0.0.1:9/x"));
        assert_eq!(env.get("KEEP"), Some("a=b"));
    }

    #[test]
    fn a_line_without_equals_is_an_error() {
        assert!(LocalEnv::parse("OOPS\n", Path::new("t"), |_| None).is_err());
    }

    #[test]
    fn the_real_file_has_the_names_scripts_rely_on() {
        let env = LocalEnv::load().unwrap();
        for key in [
            "LOCAL_GATEWAY_PORT",
            "PUBLIC_BASE_URL",
            "AWS_ENDPOINT_URL",
            "LOCAL_TWILIO_AUTH_TOKEN",
            "LOCAL_API_KEY",
            "TABLE_NAME",
            "SECRET_ID",
        ] {
            assert!(env.get(key).is_some_and(|v| !v.is_empty()), "{key}");
        }
    }
}

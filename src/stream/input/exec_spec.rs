//! The `exec:` spec: `exec[,OPTION…]:COMMAND`, and the command split into words as a
//! shell would split it. Sans-IO; the runtime is `exec`, the policy `exec_policy`.
//!
//! The options come between the kind and the FIRST `:`, and everything after it is the
//! command, verbatim: it may hold commas, `=` and `:` (ffmpeg filter graphs and URLs
//! do), and no option value holds a `:`, so the split is never in doubt. Options:
//! `on_demand`, `idle=SECS` (with `on_demand`; default 10), `restart`,
//! `kill_timeout=SECS` (default 2), `shell`; any other `key=value` is handed back to the
//! caller (the options every live kind shares, such as `fps=`). A command whose first
//! word looks like options put after the `:` (`exec:on_demand,idle=5:ffmpeg …`) is
//! refused, since it would otherwise run a program named `on_demand,idle=5:ffmpeg`.
//!
//! Without `shell`, the command is split into words as `sh` would split it — blanks
//! separate words, `'…'` keeps everything, `"…"` keeps everything but `\"` and `\\`, a
//! backslash outside quotes keeps the next character — and run directly, with no shell:
//! no variables, no globbing. A character that would mean something else to a shell
//! (`| & ; < > ( ) $` and a backquote, `#` or `~` at a word's start) is refused unless
//! quoted, rather than passed on silently as a plain argument. With `shell`, the command
//! is run by `/bin/sh -c` as written. Commands come only from the server's command line
//! (or the embedding program), never from a request.

use crate::clock::Micros;
use crate::stream::spec::LIVE_OPTIONS;

/// Seconds, in the loop's microseconds.
pub(crate) const SECOND: Micros = 1_000_000;
pub const DEFAULT_IDLE: Micros = 10 * SECOND;
pub const DEFAULT_KILL_TIMEOUT: Micros = 2 * SECOND;
const MAX_IDLE: Micros = 86_400 * SECOND;
/// A long grace would hold up the server's own stop (which waits for it).
const MAX_KILL_TIMEOUT: Micros = 60 * SECOND;

/// The options this kind reads (the ambiguity check knows them, and the live options
/// every kind shares, by name).
pub const EXEC_OPTIONS: [&str; 5] = ["on_demand", "idle", "restart", "kill_timeout", "shell"];

/// The `key=value` options of an `exec:` spec that are not this kind's own, in order.
pub type OtherOptions<'a> = Vec<(&'a str, &'a str)>;

/// What the spec asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecConfig {
    /// The command as written, for log lines.
    pub command: String,
    /// What is run: the program, then its arguments.
    pub argv: Vec<String>,
    pub on_demand: bool,
    /// With `on_demand`: how long it runs on with no viewer.
    pub idle: Micros,
    pub restart: bool,
    /// From `SIGTERM` to `SIGKILL`.
    pub kill_timeout: Micros,
}

impl ExecConfig {
    /// Parses what follows `exec` in a spec (`,OPTIONS:COMMAND` or `:COMMAND`); returns
    /// the configuration and the `key=value` options it does not know, for the caller.
    pub fn parse(rest: &str) -> Result<(ExecConfig, OtherOptions<'_>), String> {
        const SYNTAX: &str = "exec: expected exec[,OPTION…]:COMMAND";
        let (options, command) = if let Some(command) = rest.strip_prefix(':') {
            ("", command)
        } else if let Some(after_comma) = rest.strip_prefix(',') {
            after_comma
                .split_once(':')
                .ok_or_else(|| format!("{SYNTAX} (the command comes after the first ':')"))?
        } else {
            return Err(SYNTAX.into());
        };
        let mut config = ExecConfig {
            command: command.trim().to_string(),
            argv: Vec::new(),
            on_demand: false,
            idle: DEFAULT_IDLE,
            restart: false,
            kill_timeout: DEFAULT_KILL_TIMEOUT,
        };
        let (mut shell, mut idle_given, mut others) = (false, false, Vec::new());
        for option in options.split(',').filter(|o| !o.is_empty()) {
            match option.split_once('=') {
                None => match option {
                    "on_demand" => config.on_demand = true,
                    "restart" => config.restart = true,
                    "shell" => shell = true,
                    _ => return Err(unknown_option(option)),
                },
                Some(("idle", value)) => {
                    config.idle = seconds("idle", value, MAX_IDLE)?;
                    idle_given = true;
                }
                Some(("kill_timeout", value)) => {
                    config.kill_timeout = seconds("kill_timeout", value, MAX_KILL_TIMEOUT)?;
                }
                Some((key @ ("on_demand" | "restart" | "shell"), _)) => {
                    return Err(format!("exec: {key} takes no value (write just '{key}')"));
                }
                Some(pair) => others.push(pair),
            }
        }
        if idle_given && !config.on_demand {
            return Err("exec: idle= applies only with on_demand".into());
        }
        if config.command.is_empty() {
            return Err("exec: the command is empty".into());
        }
        check_not_options(&config.command)?;
        config.argv = if shell {
            ["/bin/sh", "-c", &config.command].map(String::from).to_vec()
        } else {
            split_words(&config.command).map_err(|e| format!("exec: {e}"))?
        };
        Ok((config, others))
    }
}

fn unknown_option(option: &str) -> String {
    format!(
        "exec: unknown option '{option}' (expected on_demand, idle=SECS, restart, \
         kill_timeout=SECS, shell, or a live option such as fps=N, before the ':')"
    )
}

/// A number of seconds from 0 to `max`, fractions allowed.
fn seconds(key: &str, value: &str, max: Micros) -> Result<Micros, String> {
    let max_secs = max / SECOND;
    match value.parse::<f64>() {
        Ok(secs) if (0.0..=max_secs as f64).contains(&secs) => Ok((secs * 1e6).round() as Micros),
        _ => Err(format!(
            "exec: {key} must be a number of seconds from 0 to {max_secs}, got '{value}'"
        )),
    }
}

/// Refuses a command whose first word starts like an option list (`restart,…`,
/// `idle=5…`, `on_demand:…`): options written after the `:` by mistake.
fn check_not_options(command: &str) -> Result<(), String> {
    let first = command.split_whitespace().next().unwrap_or("");
    let Some(end) = first.find([',', '=', ':']) else {
        return Ok(());
    };
    let name = &first[..end];
    if EXEC_OPTIONS.contains(&name) || LIVE_OPTIONS.contains(&name) {
        return Err(format!(
            "exec: the command starts with '{first}', which looks like options: options go \
             between 'exec' and the first ':' (exec,on_demand,idle=10:COMMAND)"
        ));
    }
    Ok(())
}

/// Splits a command line into words as `sh` would (see the module doc), refusing what
/// only a shell would understand.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                single_quoted(&mut chars, &mut word)?;
            }
            '"' => {
                in_word = true;
                double_quoted(&mut chars, &mut word)?;
            }
            '\\' => match chars.next() {
                // A line continuation, as in a shell.
                Some('\n') => {}
                Some(next) => {
                    in_word = true;
                    word.push(next);
                }
                None => return Err("the command ends with a backslash, which escapes nothing".into()),
            },
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' => return Err(shell_syntax(c)),
            '#' | '~' if !in_word => return Err(shell_syntax(c)),
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn single_quoted(chars: &mut std::str::Chars<'_>, word: &mut String) -> Result<(), String> {
    for c in chars.by_ref() {
        if c == '\'' {
            return Ok(());
        }
        word.push(c);
    }
    Err("a ' quote is not closed".into())
}

fn double_quoted(chars: &mut std::str::Chars<'_>, word: &mut String) -> Result<(), String> {
    while let Some(c) = chars.next() {
        match c {
            '"' => return Ok(()),
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => word.push(escaped),
                Some('\n') => {}
                Some(other) => {
                    word.push('\\');
                    word.push(other);
                }
                None => break,
            },
            // A shell expands these even in double quotes; we would not.
            '$' | '`' => return Err(shell_syntax(c)),
            _ => word.push(c),
        }
    }
    Err("a \" quote is not closed".into())
}

fn shell_syntax(c: char) -> String {
    format!(
        "'{c}' means something to a shell, and the command runs without one: quote it \
         ('…'), or add the shell option (exec,shell:COMMAND) to run it with /bin/sh -c"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        split_words(text).unwrap()
    }

    #[test]
    fn splits_words_as_a_shell_would() {
        assert_eq!(
            words("  ffmpeg -i  x\t-f mjpeg - "),
            ["ffmpeg", "-i", "x", "-f", "mjpeg", "-"]
        );
        assert_eq!(words(r#"a 'b c' "d e" f\ g"#), ["a", "b c", "d e", "f g"]);
        assert_eq!(
            words(r#"'it''s' "say \"hi\" \\ \n" x\\y"#),
            ["its", r#"say "hi" \ \n"#, r"x\y"]
        );
        assert_eq!(words("a '' \"\" b"), ["a", "", "", "b"]);
        assert_eq!(words("one \\\ntwo"), ["one", "two"]);
        assert_eq!(words("'|&;<>()$`#~' \"|&;<>()#~\""), ["|&;<>()$`#~", "|&;<>()#~"]);
        // Inside a word, # and ~ are plain characters for a shell too.
        assert_eq!(words("http://cam/#x a~b"), ["http://cam/#x", "a~b"]);
        // Filter graphs: commas, `=` and `:` are plain characters.
        assert_eq!(
            words("ffmpeg -vf scale=640:-2,fps=5 -q:v 5"),
            ["ffmpeg", "-vf", "scale=640:-2,fps=5", "-q:v", "5"]
        );
        assert_eq!(words(""), Vec::<String>::new());
    }

    #[test]
    fn refuses_what_only_a_shell_understands() {
        for (text, says) in [
            ("a 'b", "' quote is not closed"),
            ("a \"b", "\" quote is not closed"),
            ("a \"b\\", "\" quote is not closed"),
            ("a b\\", "ends with a backslash"),
            ("a | b", "'|' means something to a shell"),
            ("a > out", "'>'"),
            ("a && b", "'&'"),
            ("a; b", "';'"),
            ("echo $HOME", "'$'"),
            ("echo \"$HOME\"", "'$'"),
            ("echo `date`", "'`'"),
            ("trunc(iw/2)", "'('"),
            ("a #comment", "'#'"),
            ("~/bin/cam", "'~'"),
        ] {
            let err = split_words(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    fn parse(rest: &str) -> (ExecConfig, OtherOptions<'_>) {
        ExecConfig::parse(rest).unwrap()
    }

    #[test]
    fn parses_options_before_the_first_colon() {
        let (config, others) = parse(":ffmpeg -i rtsp://cam:554/x -vf fps=5,scale=320:-2 -f mjpeg -");
        assert_eq!(
            config,
            ExecConfig {
                command: "ffmpeg -i rtsp://cam:554/x -vf fps=5,scale=320:-2 -f mjpeg -".into(),
                argv: words("ffmpeg -i rtsp://cam:554/x -vf fps=5,scale=320:-2 -f mjpeg -"),
                on_demand: false,
                idle: DEFAULT_IDLE,
                restart: false,
                kill_timeout: DEFAULT_KILL_TIMEOUT,
            }
        );
        assert!(others.is_empty());

        let (config, others) =
            parse(",on_demand,idle=2.5,restart,kill_timeout=0,fps=5,max_frame=65536:rpicam-vid -t 0 -o -");
        assert!(config.on_demand && config.restart);
        assert_eq!((config.idle, config.kill_timeout), (2_500_000, 0));
        assert_eq!(config.argv, ["rpicam-vid", "-t", "0", "-o", "-"]);
        assert_eq!(others, [("fps", "5"), ("max_frame", "65536")]);

        let (config, _) = parse(",shell: ffmpeg -i x -f mjpeg - | cat ");
        assert_eq!(config.argv, ["/bin/sh", "-c", "ffmpeg -i x -f mjpeg - | cat"]);
        assert_eq!(config.command, "ffmpeg -i x -f mjpeg - | cat");
    }

    #[test]
    fn explains_a_bad_spec() {
        for (rest, says) in [
            ("", "expected exec[,OPTION…]:COMMAND"),
            ("x:y", "expected exec[,OPTION…]:COMMAND"),
            (",restart", "the command comes after the first ':'"),
            (":", "the command is empty"),
            (",restart:   ", "the command is empty"),
            (",forever:cam", "unknown option 'forever'"),
            (",restart=yes:cam", "restart takes no value"),
            (",idle=5:cam", "idle= applies only with on_demand"),
            (
                ",on_demand,idle=-1:cam",
                "idle must be a number of seconds from 0 to 86400",
            ),
            (",on_demand,idle=NaN:cam", "idle must be"),
            (
                ",kill_timeout=61:cam",
                "kill_timeout must be a number of seconds from 0 to 60",
            ),
            (":on_demand,idle=10:ffmpeg -i x", "looks like options"),
            (":restart:ffmpeg", "looks like options"),
            (":fps=5 ffmpeg", "looks like options"),
            (":cam 'x", "exec: a ' quote is not closed"),
            (":cam | tee", "add the shell option"),
        ] {
            let err = ExecConfig::parse(rest).unwrap_err();
            assert!(err.contains(says), "{rest:?}: {err}");
        }
    }

    /// Through the `--stream` parser: the kind, its options and the live ones.
    #[test]
    fn a_stream_spec_takes_exec_with_the_live_options() {
        use crate::stream::input::{InputSpec, LiveOptions, Source};
        use crate::stream::spec::StreamSpec;
        let spec = StreamSpec::parse("exec,restart,fps=5,refresh=0:cam -o - --opt=a,b").unwrap();
        let StreamSpec::Live(InputSpec { source, options }) = spec else {
            panic!("{spec:?}");
        };
        let LiveOptions { fps, refresh, .. } = options;
        assert_eq!((fps, refresh), (Some(5.0), 0));
        let Source::Exec(config) = source else {
            panic!("{source:?}");
        };
        assert!(config.restart && !config.on_demand);
        assert_eq!(config.argv, ["cam", "-o", "-", "--opt=a,b"]);
        for (text, says) in [
            ("exec", "exec: expected exec[,OPTION…]:COMMAND"),
            ("exec,fps=0:cam", "exec: fps must be a number from 0.001 to 1000"),
            ("exec,fault=chunked:cam", "exec: faults apply to scripted streams"),
            (
                "exec,size=1:cam",
                "exec: unknown option 'size' (expected fps, max_frame",
            ),
            ("executable:x", "unknown stream kind 'executable'"),
        ] {
            let err = StreamSpec::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}

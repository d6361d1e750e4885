//! `paddock completion SHELL` and the man pages paddock-man renders, both from the
//! clap definition of the command line.

mod common;

use std::process::Command;

use common::Env;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn completion_scripts_for_each_shell() {
    let env = Env::new();
    for (shell, marker, checker) in [
        ("bash", "complete -F _paddock", "bash"),
        ("zsh", "#compdef paddock", "zsh"),
        ("fish", "complete -c paddock", "fish"),
    ] {
        let out = env.paddock(&["completion", shell]).success();
        assert!(out.stdout.contains(marker), "{shell}: {out:?}");
        // The new commands and their flags are offered.
        // (fish spells long flags `-l image-path`.)
        for word in ["checkpoint", "restore", "image-path", "leave-running"] {
            assert!(out.stdout.contains(word), "{shell} lacks {word}");
        }
        if have(checker) {
            let file = env.dir.join(format!("paddock.{shell}"));
            std::fs::write(&file, &out.stdout).unwrap();
            let check = Command::new(checker).arg("-n").arg(&file).output().unwrap();
            assert!(check.status.success(), "{checker} -n: {check:?}");
        }
    }
    let out = env.paddock(&["completion", "tcsh"]).fails_with_one_line();
    assert!(out.stderr.contains("tcsh"), "{out:?}");
}

#[test]
fn man_pages_render() {
    let env = Env::new();
    let dir = env.mkdir("man");
    let out = Command::new(env!("CARGO_BIN_EXE_paddock-man"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "paddock-man: {out:?}");
    for page in [
        "paddock.8",
        "paddock-checkpoint.8",
        "paddock-restore.8",
        "paddock-run.8",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        let name = page.trim_end_matches(".8");
        assert!(
            text.contains(&format!("\n.TH {name} 8")),
            "{page}: {text:.80}"
        );
    }
    let page = dir.join("paddock-checkpoint.8");
    let rendered = if have("man") {
        Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .output()
    } else if have("groff") {
        Command::new("groff")
            .args(["-man", "-Tutf8"])
            .arg(&page)
            .output()
    } else {
        eprintln!("skipped rendering: neither man nor groff is installed (header checked)");
        return;
    }
    .unwrap();
    assert!(rendered.status.success(), "{rendered:?}");
    let text = String::from_utf8_lossy(&rendered.stdout);
    for word in ["NAME", "SYNOPSIS", "--image-path", "--leave-running"] {
        assert!(text.contains(word), "rendered page lacks {word}: {text}");
    }
}

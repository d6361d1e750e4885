//! PASS/FAIL lines in the format integration/lib.sh counts.

use std::fmt::Debug;

#[derive(Default)]
pub struct Report {
    failed: usize,
}

impl Report {
    pub fn pass(&mut self, what: &str) {
        println!("PASS: {what}");
    }

    pub fn fail(&mut self, what: &str, why: impl std::fmt::Display) {
        self.failed += 1;
        // One line per check: the detail may hold a container's multi-line output.
        let why = why.to_string().replace('\n', "\\n");
        println!("FAIL: {what}: {why}");
    }

    pub fn check(&mut self, ok: bool, what: &str, detail: impl std::fmt::Display) {
        if ok {
            self.pass(what)
        } else {
            self.fail(what, detail)
        }
    }

    pub fn eq<T: PartialEq + Debug>(&mut self, what: &str, got: T, want: T) {
        let ok = got == want;
        self.check(ok, what, format_args!("got {got:?}, want {want:?}"));
    }

    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }
}

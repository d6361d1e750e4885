//! The parity suite, general part: the same bundle and command through Debian's runc
//! and through paddock, compared as a caller sees them. Area-specific cases live in
//! `parity_<area>.rs`; intended differences are listed in README ("Differences from runc").
mod common;

use common::parity::{assert_same, side_by_side};
use common::Env;

#[test]
fn a_bundle_from_runc_spec_runs_unmodified() {
    let env = Env::new();
    let b = env.runc_spec_bundle(&["sh", "-c", "echo hello; id -u"]);
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("runc spec bundle", &outs);
    assert_eq!(outs[1].stdout, "hello\n0\n");
}

//! containerd-shim-paddock-v2: containerd's shim v2 for the paddock runtime (runtime type
//! `io.containerd.paddock.v2`). Built on the containerd-shim crate's synchronous API.

mod console;
mod events;
mod io;
mod mount;
mod oom;
mod options;
mod process;
mod runtime;
mod serve;
mod service;
mod stats;
mod task;

const RUNTIME_ID: &str = "io.containerd.paddock.v2";

fn main() {
    // One malloc arena for all threads: the shim's threads mostly sleep, and an arena per
    // thread costs resident memory in every shim (one per container or pod).
    // SAFETY: mallopt with integer arguments, before any thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let args: Vec<_> = std::env::args_os().collect();
    if let Ok(flags) = containerd_shim::parse(&args[1..]) {
        if flags.version {
            println!("containerd-shim-paddock-v2 {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        if flags.action == "start" {
            match service::start_action(&flags).and_then(|a| service::print_address(&a)) {
                Ok(()) => return,
                Err(e) => {
                    eprintln!("{RUNTIME_ID}: {e:#}");
                    std::process::exit(1);
                }
            }
        }
        if flags.action.is_empty() && !flags.socket.is_empty() {
            // Serving: out of containerd's process group, so a signal to containerd's
            // terminal does not end the shim and the containers with it.
            // SAFETY: setpgid on ourselves.
            unsafe { libc::setpgid(0, 0) };
            if let Err(e) = serve::serve(RUNTIME_ID, &flags) {
                containerd_shim::error!("{e:#}");
                eprintln!("{RUNTIME_ID}: {e:#}");
                std::process::exit(1);
            }
            return;
        }
    }
    containerd_shim::run::<service::Service>(RUNTIME_ID, None);
}

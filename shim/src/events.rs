//! Events to containerd, in the order they were queued: one sender thread forwards them over
//! ttrpc and reconnects when containerd was restarted (the crate's publisher connects once).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::Context;

type Event = (&'static str, Box<dyn MessageDyn + Send>);

#[derive(Clone)]
pub struct Events {
    tx: Sender<Event>,
}

impl Events {
    pub fn new(publisher: RemotePublisher, namespace: String) -> Self {
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("events".into())
            .stack_size(256 * 1024)
            .spawn(move || forward(publisher, &namespace, rx));
        if let Err(e) = spawned {
            containerd_shim::error!("start the event sender: {e}");
        }
        Self { tx }
    }

    pub fn send(&self, topic: &'static str, event: Box<dyn MessageDyn + Send>) {
        // The sender thread only stops with the process.
        let _ = self.tx.send((topic, event));
    }
}

fn forward(mut publisher: RemotePublisher, namespace: &str, rx: Receiver<Event>) {
    let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
    for (topic, event) in rx {
        let event: Box<dyn MessageDyn> = event;
        let mut sent = false;
        for attempt in 0..10u64 {
            match publisher.publish(Context::default(), topic, namespace, clone_box(&*event)) {
                Ok(()) => {
                    sent = true;
                    break;
                }
                Err(e) => {
                    containerd_shim::warn!("publish {topic} (attempt {}): {e}", attempt + 1);
                    std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
                    if let Ok(p) = RemotePublisher::new(&address) {
                        publisher = p;
                    }
                }
            }
        }
        if !sent {
            containerd_shim::error!("dropped event {topic}: containerd unreachable");
        }
    }
}

fn clone_box(m: &dyn MessageDyn) -> Box<dyn MessageDyn> {
    m.clone_box()
}

//! Events to containerd, in the order they were queued: one sender thread forwards them over
//! ttrpc and reconnects when containerd was restarted (the crate's publisher connects once).
//! Events are encoded here with their type name spelled out: the crate's publisher asks
//! protobuf's reflection for it, which builds descriptor tables that would stay resident in
//! every shim.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::shim_sync::{Client, EventsClient};
use containerd_shim::Context;

use crate::process::now;

/// topic, type URL, encoded event
type Event = (&'static str, String, Vec<u8>);

#[derive(Clone)]
pub struct Events {
    tx: Sender<Event>,
}

impl Events {
    /// Forward to containerd's ttrpc socket at `address` (TTRPC_ADDRESS).
    pub fn new(address: String, namespace: String) -> Self {
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("events".into())
            .stack_size(128 * 1024)
            .spawn(move || forward(&address, &namespace, rx));
        if let Err(e) = spawned {
            containerd_shim::error!("start the event sender: {e}");
        }
        Self { tx }
    }

    /// Queue an event of containerd's `containerd.events` package.
    pub fn send<M: Message>(&self, topic: &'static str, event: M) {
        match event.write_to_bytes() {
            // The sender thread only stops with the process.
            Ok(bytes) => drop(self.tx.send((
                topic,
                format!("containerd.events.{}", M::NAME),
                bytes,
            ))),
            Err(e) => containerd_shim::error!("encode {topic}: {e}"),
        }
    }
}

fn connect(address: &str) -> Option<EventsClient> {
    let fd = containerd_shim::util::connect(address).ok()?;
    Client::new(fd).ok().map(EventsClient::new)
}

fn forward(address: &str, namespace: &str, rx: Receiver<Event>) {
    let mut client = connect(address);
    for (topic, type_url, value) in rx {
        let req = ForwardRequest {
            envelope: MessageField::some(Envelope {
                timestamp: MessageField::some(now()),
                namespace: namespace.to_string(),
                topic: topic.to_string(),
                event: MessageField::some(Any {
                    type_url,
                    value,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut sent = false;
        for attempt in 0..10u64 {
            if let Some(c) = &client {
                match c.forward(Context::default(), &req) {
                    Ok(_) => {
                        sent = true;
                        break;
                    }
                    Err(e) => {
                        containerd_shim::warn!("publish {topic} (attempt {}): {e}", attempt + 1)
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
            client = connect(address);
        }
        if !sent {
            containerd_shim::error!("dropped event {topic}: containerd unreachable");
        }
    }
}

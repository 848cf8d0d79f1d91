//! The hub as the brokers see it: where they hand what they deliver on
//! this node ([`crate::broker::Events`]).

use std::sync::Arc;

use super::{Hub, Target};
use crate::wire::{Author, Change, PresenceMember, Publication};

impl crate::broker::Events for Hub {
    fn publication(&self, p: &Arc<Publication>) {
        self.deliver(p);
    }

    fn reset(&self, room: &str, epoch: &str) {
        if let Some(r) = self.room(room) {
            self.metrics.room_resets.inc();
            r.began_again(epoch);
            tracing::warn!(%room, %epoch, members = r.len(), "a room's history was lost: its members are told the new epoch");
            r.deliver_event(&crate::wire::Event::Reset {
                room: r.name(),
                epoch,
            });
        }
    }

    fn presence_change(&self, room: &str, change: Change, member: &PresenceMember) {
        self.deliver_presence(room, change, member);
    }

    fn direct(&self, target: &Target, from: &Author, payload: &crate::payload::Payload) -> usize {
        self.send(target, from, payload)
    }

    fn disconnect(&self, target: &Target, code: u16, reason: &str) -> usize {
        Hub::disconnect(self, target, code, reason)
    }

    fn members_here(&self, room: &str) -> Option<Vec<(String, PresenceMember)>> {
        self.room(room).map(|r| r.keyed_presence())
    }

    fn user_conns(&self, room: &str, user: &str) -> usize {
        self.room(room).map_or(0, |r| r.user_conns(user))
    }

    fn presence_here(&self, room: &str) -> Option<Vec<PresenceMember>> {
        self.room(room).map(|r| r.presence())
    }

    fn answer(&self, query: &crate::broker::NodeQuery) -> crate::broker::NodeAnswer {
        self.answer(query)
    }

    fn node_report(&self, node: u16, report: Vec<u8>) {
        if !self.keep_report(node, report) {
            self.metrics
                .broker_refused(crate::metrics::Refused::Report)
                .inc();
        }
    }
}

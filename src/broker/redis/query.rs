//! The operator view's questions to every node ([`NodeQuery`]): asked on
//! the all-nodes channel, answered on the asking node's own channel, and
//! gathered as a disconnect's answers are: PUBLISH says how many nodes
//! heard, and the asking node waits for that many (at most
//! `cluster.timeout`). Questions and answers are bounded both ways.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::codec::NodeMessage;
use super::node::{all_channel, node_channel, unreachable};
use super::Inner;
use crate::broker::{BrokerError, NodeAnswer, NodeQuery};
use crate::metrics::Refused;

/// The largest question believed (a room name and two numbers).
const QUERY_MAX: usize = 4 * 1024;
/// The largest answer believed (a page of 200 members).
const ANSWER_MAX: usize = 128 * 1024;

/// A question waiting for answers.
#[derive(Default)]
pub(super) struct Asked {
    answers: Mutex<Vec<(u16, NodeAnswer)>>,
    done: Notify,
}

impl Inner {
    /// Another node's question: answer it from this node's hub.
    pub(super) fn on_query(&self, origin: u16, request: u64, query: &[u8]) {
        if origin == self.node() {
            return;
        }
        let parsed = (query.len() <= QUERY_MAX)
            .then(|| serde_json::from_slice::<NodeQuery>(query).ok())
            .flatten();
        let Some(q) = parsed else {
            self.refused(Refused::Report);
            return;
        };
        let answer = serde_json::to_vec(&self.events.answer(&q)).expect("an answer serialises");
        let msg = NodeMessage::Answer {
            node: self.node(),
            request,
            answer,
        };
        self.publish_to(node_channel(&self.config.prefix, origin), msg.encode());
    }

    /// An answer to one of this node's questions.
    pub(super) fn on_answer(&self, node: u16, request: u64, answer: &[u8]) {
        let Some(asked) = self.queries.get(&request).map(|a| a.clone()) else {
            return;
        };
        let parsed = (answer.len() <= ANSWER_MAX)
            .then(|| serde_json::from_slice::<NodeAnswer>(answer).ok())
            .flatten()
            .filter(NodeAnswer::within_bounds);
        let Some(a) = parsed else {
            self.refused(Refused::Report);
            return;
        };
        asked
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((node, a));
        asked.done.notify_one();
    }

    /// Ask every other node `query`; their answers.
    pub(super) async fn ask_nodes(
        self: Arc<Self>,
        query: NodeQuery,
    ) -> Result<Vec<(u16, NodeAnswer)>, BrokerError> {
        if !self.link.is_up() {
            return Err(unreachable());
        }
        let request = self.next_ask.fetch_add(1, Ordering::Relaxed);
        let asked = Arc::new(Asked::default());
        self.queries.insert(request, asked.clone());
        let msg = NodeMessage::Query {
            origin: self.node(),
            request,
            query: serde_json::to_vec(&query).expect("a query serialises"),
        };
        let answers = || asked.answers.lock().unwrap_or_else(|e| e.into_inner());
        let result = self
            .publish_and_wait(
                &all_channel(&self.config.prefix),
                msg.encode(),
                true,
                &asked.done,
                || answers().len(),
            )
            .await
            .map(|()| std::mem::take(&mut *answers()));
        self.queries.remove(&request);
        result
    }
}

//! What every per-domain property test does: apply a random command sequence
//! to one replica, checking the domain's invariants and that a rejected
//! command changes nothing, then replay the log on a second replica and
//! require byte-for-byte agreement.

use flotilla_model::store::{tables, MemoryState, StateRead};
use flotilla_model::{apply, Command, Request, RequestId, Response};

/// One replica driven through `commands`, one proposer tick (7 ms) apart.
pub struct Replica {
    pub state: MemoryState,
    pub log: Vec<(Request, Response)>,
    pub clock: u64,
}

impl Replica {
    pub fn new() -> Self {
        Replica { state: MemoryState::default(), log: Vec::new(), clock: 1_000 }
    }

    /// Applies `command`, asserting that a rejection left the state as it was
    /// (request-id bookkeeping aside) and that `invariants` hold after.
    pub fn run(&mut self, command: Command, invariants: fn(&dyn StateRead) -> Result<(), String>) -> Response {
        self.clock += 7;
        let request = Request { request_id: RequestId(self.log.len() as u128 + 1), time_ms: self.clock, command };
        let before = self.state.clone();
        let response = apply(&mut self.state, &request).expect("the memory store never fails");
        if let Response::Rejected(rejection) = &response {
            assert_eq!(without_bookkeeping(&self.state), without_bookkeeping(&before), "{rejection} changed state");
        }
        if let Err(violation) = invariants(&self.state) {
            panic!("{violation}\nafter {request:?}");
        }
        self.log.push((request, response.clone()));
        response
    }

    /// A second replica applying the same log ends byte for byte the same, with the same responses.
    pub fn assert_replay_agrees(&self) {
        let mut replica = MemoryState::default();
        for (request, response) in &self.log {
            assert_eq!(&apply(&mut replica, request).unwrap(), response, "{request:?}");
        }
        assert_eq!(replica, self.state);
    }
}

fn without_bookkeeping(state: &MemoryState) -> MemoryState {
    let mut state = state.clone();
    state.entries.retain(|key, _| key[0] != tables::REQUEST && key[0] != tables::REQUEST_TIME);
    state
}

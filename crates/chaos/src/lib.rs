//! Fault injection, workloads and history checkers for Flotilla clusters.
//!
//! So far the checkers' core: [`linearizability`], a Wing–Gong search with
//! memoization (as Knossos and Porcupine do) that decides whether a history
//! of tag reads and writes, each with the real-time interval in which the
//! client saw it, could have come from one register per tag, and shrinks a
//! violation to a small failing history. The fault schedules and the
//! workloads that produce histories follow (the chaos issue).

pub mod linearizability;

//! The usage record of one answer: token counts folded from what the Messages API reports
//! (`message_start`, `message_delta`, or a non-streamed body's `usage`), its state, and its cost.

/// Token counts of the contract, in its order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_creation: u64,
    pub cache_read: u64,
}

/// The fields one event (or one JSON answer) carried; absent ones leave earlier values alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reported {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_creation: Option<u64>,
    pub cache_read: Option<u64>,
}

/// `wasm.gateway_usage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The final usage was seen.
    Complete,
    /// The answer ended before its final usage: output tokens estimated from the streamed text.
    Estimated,
    /// No usage in the answer (an error status, an encoded body, nothing streamed).
    None,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Complete => "complete",
            State::Estimated => "estimated",
            State::None => "none",
        }
    }
}

/// What is known about one answer's usage: tokens, and whether they are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub state: State,
    pub tokens: Tokens,
}

/// Folds the answer's reports, in stream order.
#[derive(Clone, Debug, Default)]
pub struct Accumulator {
    seen: Reported,
    /// Input, output or cache counts were reported at all (`message_start` or later).
    started: bool,
    /// The final usage came (`message_delta`, or a JSON answer's `usage.output_tokens`).
    complete: bool,
    /// UTF-8 bytes of the decoded streamed text (`text`, `thinking`, `partial_json`).
    streamed_bytes: u64,
}

impl Accumulator {
    /// `message_start`: the input and cache counts (its `output_tokens` is a placeholder).
    pub fn message_start(&mut self, reported: &Reported) {
        self.started = true;
        self.merge(&Reported { output: None, ..*reported });
    }

    /// `message_delta`: cumulative output, and any input or cache count it carries; last one wins.
    pub fn message_delta(&mut self, reported: &Reported) {
        self.started = true;
        self.merge(reported);
        if reported.output.is_some() {
            self.complete = true;
        }
    }

    /// A non-streamed answer's top-level `usage`.
    pub fn answer(&mut self, reported: &Reported) {
        self.message_delta(reported);
    }

    /// Decoded bytes of streamed text, for the estimate when the stream ends early.
    pub fn streamed(&mut self, bytes: u64) {
        self.streamed_bytes = self.streamed_bytes.saturating_add(bytes);
    }

    fn merge(&mut self, reported: &Reported) {
        let seen = &mut self.seen;
        for (slot, value) in [
            (&mut seen.input, reported.input),
            (&mut seen.output, reported.output),
            (&mut seen.cache_creation, reported.cache_creation),
            (&mut seen.cache_read, reported.cache_read),
        ] {
            if value.is_some() {
                *slot = value;
            }
        }
    }

    /// The record as of now: complete, estimated (ceil(bytes / 4) output tokens) or none.
    pub fn record(&self) -> Record {
        let state = if self.complete {
            State::Complete
        } else if self.started || self.streamed_bytes > 0 {
            State::Estimated
        } else {
            State::None
        };
        let output = match state {
            State::Complete => self.seen.output.unwrap_or(0),
            State::Estimated => self.streamed_bytes.div_ceil(4),
            State::None => 0,
        };
        Record {
            state,
            tokens: Tokens {
                input: self.seen.input.unwrap_or(0),
                output,
                cache_creation: self.seen.cache_creation.unwrap_or(0),
                cache_read: self.seen.cache_read.unwrap_or(0),
            },
        }
    }
}

/// `usage.cost_weights` in thousandths, so that cost is exact integer arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostWeights {
    pub input: u64,
    pub output: u64,
    pub cache_creation: u64,
    pub cache_read: u64,
}

impl Default for CostWeights {
    /// The contract's: cache reads are free, everything else costs one per token.
    fn default() -> Self {
        CostWeights { input: 1000, output: 1000, cache_creation: 1000, cache_read: 0 }
    }
}

impl CostWeights {
    /// ceil(Σ (1000 × weight) × tokens / 1000), saturating at `u64::MAX`.
    pub fn cost(&self, tokens: &Tokens) -> u64 {
        let milli = [
            (self.input, tokens.input),
            (self.output, tokens.output),
            (self.cache_creation, tokens.cache_creation),
            (self.cache_read, tokens.cache_read),
        ]
        .iter()
        .fold(0u128, |sum, (w, n)| sum.saturating_add(u128::from(*w) * u128::from(*n)));
        u64::try_from(milli.div_ceil(1000)).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(input: u64, output: u64, creation: u64, read: u64) -> Reported {
        Reported {
            input: Some(input),
            output: Some(output),
            cache_creation: Some(creation),
            cache_read: Some(read),
        }
    }

    #[test]
    fn start_then_delta_is_complete_and_the_last_value_wins() {
        let mut acc = Accumulator::default();
        assert_eq!(acc.record().state, State::None);
        acc.message_start(&some(25, 1, 3, 4));
        assert_eq!(
            acc.record(),
            Record {
                state: State::Estimated,
                tokens: Tokens { input: 25, output: 0, cache_creation: 3, cache_read: 4 }
            }
        );
        acc.streamed(9);
        assert_eq!(acc.record().tokens.output, 3);
        acc.message_delta(&Reported { output: Some(7), cache_read: Some(40), ..Reported::default() });
        acc.message_delta(&Reported { output: Some(12), ..Reported::default() });
        assert_eq!(
            acc.record(),
            Record {
                state: State::Complete,
                tokens: Tokens { input: 25, output: 12, cache_creation: 3, cache_read: 40 }
            }
        );
    }

    #[test]
    fn a_delta_without_output_is_not_final() {
        let mut acc = Accumulator::default();
        acc.message_delta(&Reported { input: Some(5), ..Reported::default() });
        assert_eq!(acc.record().state, State::Estimated);
        acc.answer(&some(5, 2, 0, 0));
        assert_eq!(acc.record().state, State::Complete);
    }

    #[test]
    fn the_estimate_rounds_up() {
        let mut acc = Accumulator::default();
        acc.streamed(1);
        assert_eq!(
            acc.record(),
            Record { state: State::Estimated, tokens: Tokens { output: 1, ..Tokens::default() } }
        );
        acc.streamed(7);
        assert_eq!(acc.record().tokens.output, 2);
    }

    #[test]
    fn cost_is_exact() {
        let tokens = Tokens { input: 3, output: 7, cache_creation: 1, cache_read: 1000 };
        assert_eq!(CostWeights::default().cost(&tokens), 11);
        // 0.001 × 3 + 0.3 × 7 + 1.25 × 1 + 0.1 × 1000 = 103.353 → 104; floats would say 103.35300000000001.
        let weights = CostWeights { input: 1, output: 300, cache_creation: 1250, cache_read: 100 };
        assert_eq!(weights.cost(&tokens), 104);
        assert_eq!(weights.cost(&Tokens { output: 10, ..Tokens::default() }), 3);
        let zero = CostWeights { input: 0, output: 0, cache_creation: 0, cache_read: 0 };
        assert_eq!(zero.cost(&tokens), 0);
        let max =
            Tokens { input: u64::MAX, output: u64::MAX, cache_creation: u64::MAX, cache_read: u64::MAX };
        assert_eq!(CostWeights::default().cost(&max), u64::MAX);
    }
}

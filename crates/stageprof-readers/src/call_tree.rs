//! Stage and frame calls of each thread, nested: sorted so that every call's
//! descendants follow it contiguously (pre-order), which lets "everything a
//! stage did, nested stages included" be a range.

use std::collections::HashMap;
use std::ops::Range;

use stageprof_model::SpanKind;

use crate::trace_tables::Call;

pub(crate) struct CallTree {
    /// Sorted by thread, then start, then end descending.
    pub calls: Vec<Call>,
    pub parent: Vec<Option<u32>>,
    /// One past the last descendant of each call.
    pub subtree_end: Vec<u32>,
    threads: HashMap<u32, Range<usize>>,
    /// Calls that overlapped their parent's end and were cut to it.
    pub clipped: u64,
}

impl CallTree {
    pub(crate) fn build(mut calls: Vec<Call>) -> CallTree {
        calls.sort_by_key(|c| (c.thread, c.start, std::cmp::Reverse(c.end)));
        let n = calls.len();
        let mut parent = vec![None; n];
        let mut threads: HashMap<u32, Range<usize>> = HashMap::new();
        let mut stack: Vec<u32> = Vec::new();
        let mut clipped = 0;
        for i in 0..n {
            let c = calls[i];
            if i > 0 && calls[i - 1].thread != c.thread {
                stack.clear();
            }
            threads.entry(c.thread).or_insert(i..i).end = i + 1;
            while stack
                .last()
                .is_some_and(|&top| calls[top as usize].end <= c.start && calls[top as usize].start < c.start)
            {
                stack.pop();
            }
            if let Some(&top) = stack.last() {
                let top_end = calls[top as usize].end;
                if c.end > top_end {
                    calls[i].end = top_end;
                    clipped += 1;
                }
                parent[i] = Some(top);
            }
            stack.push(i as u32);
        }
        let mut subtree_end: Vec<u32> = (1..=n as u32).collect();
        for i in (0..n).rev() {
            if let Some(p) = parent[i] {
                subtree_end[p as usize] = subtree_end[p as usize].max(subtree_end[i]);
            }
        }
        CallTree { calls, parent, subtree_end, threads, clipped }
    }

    /// Calls of `thread`, as an index range.
    pub(crate) fn thread_range(&self, thread: u32) -> Range<usize> {
        self.threads.get(&thread).cloned().unwrap_or(0..0)
    }

    pub(crate) fn threads(&self) -> impl Iterator<Item = u32> + '_ {
        let mut t: Vec<u32> = self.threads.keys().copied().collect();
        t.sort_unstable();
        t.into_iter()
    }

    /// Per call, the frame it ran in, numbered in the order frames started:
    /// the frame open on `frame_thread` when the call began (so stages of
    /// threads without frames of their own, like autograd's, are placed too).
    pub(crate) fn frame_numbers(&self, frame_thread: Option<u32>) -> Vec<Option<u32>> {
        let mut frames: Vec<usize> = (0..self.calls.len()).filter(|&i| self.calls[i].kind == SpanKind::Frame).collect();
        frames.sort_by_key(|&i| (self.calls[i].start, i));
        let mut number = vec![None; self.calls.len()];
        for (n, &i) in frames.iter().enumerate() {
            number[i] = Some(n as u32);
        }
        let Some(owner) = frame_thread else { return number };
        (0..self.calls.len())
            .map(|i| {
                if number[i].is_some() {
                    return number[i];
                }
                let mut at = self.innermost(owner, self.calls[i].start)?;
                while self.calls[at as usize].kind != SpanKind::Frame {
                    at = self.parent[at as usize]?;
                }
                number[at as usize]
            })
            .collect()
    }

    /// The innermost call of `thread` open at `ts`.
    pub(crate) fn innermost(&self, thread: u32, ts: i64) -> Option<u32> {
        let range = self.thread_range(thread);
        let calls = &self.calls[range.clone()];
        let after = calls.partition_point(|c| c.start <= ts);
        let mut at = (range.start + after).checked_sub(1).filter(|&i| i >= range.start)?;
        loop {
            if self.calls[at].end >= ts {
                return Some(at as u32);
            }
            at = self.parent[at]? as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(thread: u32, name: u32, start: i64, end: i64) -> Call {
        Call { thread, kind: SpanKind::Stage, name, start, end }
    }

    #[test]
    fn nests_orders_and_finds_the_innermost() {
        let tree = CallTree::build(vec![
            call(1, 2, 20, 30),
            call(1, 1, 0, 100),
            call(1, 3, 40, 120), // overlaps its parent's end: clipped to 100
            call(2, 4, 0, 10),
            call(1, 5, 200, 210),
        ]);
        let names: Vec<u32> = tree.calls.iter().map(|c| c.name).collect();
        assert_eq!(names, [1, 2, 3, 5, 4]);
        assert_eq!(tree.parent, [None, Some(0), Some(0), None, None]);
        assert_eq!(tree.subtree_end, [3, 2, 3, 4, 5]);
        assert_eq!((tree.calls[2].end, tree.clipped), (100, 1));
        assert_eq!(tree.innermost(1, 25), Some(1));
        assert_eq!(tree.innermost(1, 35), Some(0));
        assert_eq!(tree.innermost(1, 150), None);
        assert_eq!(tree.innermost(1, 205), Some(3));
        assert_eq!(tree.innermost(2, 5), Some(4));
        assert_eq!(tree.innermost(3, 5), None);
    }

    #[test]
    fn calls_are_placed_in_the_frame_thread_s_frames() {
        let frame = |start, end| Call { thread: 1, kind: SpanKind::Frame, name: 0, start, end };
        let tree = CallTree::build(vec![
            frame(100, 200),
            frame(0, 100),
            call(1, 1, 10, 20),   // in frame 0
            call(2, 2, 150, 160), // another thread, while frame 1 is open
            call(2, 3, 250, 260), // after every frame
        ]);
        // Sorted by thread and start: frame 0, its call, frame 1, then thread 2's calls.
        assert_eq!(tree.frame_numbers(Some(1)), [Some(0), Some(0), Some(1), Some(1), None]);
        assert_eq!(tree.frame_numbers(None), [Some(0), None, Some(1), None, None]);
    }
}

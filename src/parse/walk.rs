//! A pattern's regex matched by walking its syntax tree, for the shapes
//! event patterns take: literal text, classes of one character repeated
//! (`\d+`, `[\d,]*`, `\S+`, `.*`), groups, optional parts, alternatives and
//! `$`. Seven of the default patterns are not one-pass (a number's `[\d,]*`
//! cannot tell its own comma from the `, ` after it without looking ahead),
//! so the `regex` crate runs its bounded backtracker on them, one NFA state
//! and one byte at a time: 10 % of a dense backfill's time on one core.
//! Here a repeated class is consumed in one loop and given back one
//! character at a time, and a literal is one compare.
//!
//! The answers are the `regex` crate's: an anchored search that tries the
//! alternatives of each node in the order the crate prefers them (greedy
//! repetitions longest first, lazy ones shortest first, alternatives left
//! to right) finds the match the crate's leftmost-first semantics define,
//! captures included (a property test holds the two equal on every default
//! pattern). A regex with anything else (a word boundary, a byte class, a
//! repetition of something that can match nothing) is not taken: its
//! pattern keeps the crate's engine. A search that takes more steps than
//! its budget (a pattern that backtracks badly on some line) gives up, and
//! the crate's engine answers instead: never a wrong answer, and never
//! more than a bounded detour.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// One step of a pattern.
#[derive(Debug, Clone)]
enum Node {
    /// This text, byte for byte.
    Lit(Box<[u8]>),
    /// One character of the class.
    Char(CharClass),
    /// `min..=max` characters of the class (no `max`: any number).
    Run {
        class: CharClass,
        min: u32,
        max: Option<u32>,
        greedy: bool,
    },
    /// `min..=max` matches of a sequence that never matches nothing.
    Rep {
        sub: Box<[Node]>,
        min: u32,
        max: Option<u32>,
        greedy: bool,
    },
    /// A capture group: `slot` takes its start, `slot + 1` its end.
    Group { slot: usize, sub: Box<[Node]> },
    /// The first alternative (in order) after which the rest matches.
    Alt(Box<[Box<[Node]>]>),
    /// The start of the haystack.
    Start,
    /// The end of the haystack.
    End,
}

/// A class of characters: a bitmap for ASCII, ranges for the rest.
#[derive(Debug, Clone)]
struct CharClass {
    ascii: [u64; 2],
    ranges: Box<[(char, char)]>,
}

impl CharClass {
    fn new(ranges: &[(char, char)]) -> CharClass {
        let mut ascii = [0u64; 2];
        for &(lo, hi) in ranges {
            for c in (lo as u32)..=(hi as u32).min(127) {
                ascii[(c / 64) as usize] |= 1 << (c % 64);
            }
        }
        CharClass {
            ascii,
            ranges: ranges.into(),
        }
    }

    /// The length of the character at `pos` if the class holds it.
    #[inline]
    fn at(&self, hay: &str, pos: usize) -> Option<usize> {
        let b = *hay.as_bytes().get(pos)?;
        if b < 128 {
            return (self.ascii[(b / 64) as usize] & (1 << (b % 64)) != 0).then_some(1);
        }
        let c = hay.get(pos..)?.chars().next()?;
        let held = self
            .ranges
            .binary_search_by(|&(lo, hi)| {
                if hi < c {
                    std::cmp::Ordering::Less
                } else if lo > c {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok();
        held.then(|| c.len_utf8())
    }
}

/// A regex compiled for [`Program::captures`], if it has only the shapes
/// this module walks.
#[derive(Debug, Clone)]
pub struct Program {
    nodes: Box<[Node]>,
}

/// The most capture groups (group 0 included) a walked regex may have:
/// a match's groups are kept in place, not on the heap.
const MAX_GROUPS: usize = 16;

/// Where each group of a match starts and ends (`NONE`: the group took no
/// part), group 0 first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Slots([u32; 2 * MAX_GROUPS]);

const NONE: u32 = u32::MAX;

/// The most turns of loops a walk may have under way at once before it
/// gives up: each turn is a few nested calls (a run is a loop, but a
/// repeated group is not, and a loop inside a loop nests its turns on the
/// outer's), and a line must not run a thread out of stack however many
/// times a user's `(?:\S+ )+` repeats on it. The crate's engine, which
/// keeps its own stack on the heap, answers instead.
const MAX_TURNS: u32 = 256;

impl Slots {
    /// Group `i`'s start and end, if it took part in the match.
    pub fn get(&self, i: usize) -> Option<(usize, usize)> {
        let (s, e) = (*self.0.get(2 * i)?, *self.0.get(2 * i + 1)?);
        (s != NONE && e != NONE).then_some((s as usize, e as usize))
    }
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries((0..MAX_GROUPS).map(|i| self.get(i)))
            .finish()
    }
}

/// What a search found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// The match and its groups.
    Match(Slots),
    /// No match.
    NoMatch,
    /// The search took more steps than its budget: ask another engine.
    GaveUp,
}

impl Program {
    /// `hir` as a program, or `None` if it has a shape this module does
    /// not walk (a group numbered `MAX_GROUPS` or more among them).
    pub fn new(hir: &Hir) -> Option<Program> {
        let mut nodes = Vec::new();
        push_nodes(hir, &mut nodes)?;
        Some(Program {
            nodes: nodes.into(),
        })
    }

    /// The match that starts at `start` in `hay`, with its groups, as the
    /// `regex` crate's anchored leftmost-first search gives it.
    pub fn captures(&self, hay: &str, start: usize) -> Found {
        // Positions are kept in 32 bits (a line is far shorter).
        if hay.len() >= NONE as usize {
            return Found::GaveUp;
        }
        let mut search = Search {
            hay,
            slots: Slots([NONE; 2 * MAX_GROUPS]),
            budget: 256 + 16 * hay.len(),
            turns: 0,
        };
        match search.go(&self.nodes, None, start) {
            Err(OverBudget) => Found::GaveUp,
            Ok(None) => Found::NoMatch,
            Ok(Some(end)) => {
                let mut slots = search.slots;
                slots.0[0] = start as u32;
                slots.0[1] = end as u32;
                Found::Match(slots)
            }
        }
    }
}

/// Appends the nodes `hir` matches as; `None` for a shape not walked here.
fn push_nodes(hir: &Hir, out: &mut Vec<Node>) -> Option<()> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(lit) => {
            std::str::from_utf8(&lit.0).ok()?;
            out.push(Node::Lit(lit.0.clone()));
        }
        HirKind::Class(Class::Unicode(c)) => {
            let ranges: Vec<_> = c.iter().map(|r| (r.start(), r.end())).collect();
            out.push(Node::Char(CharClass::new(&ranges)));
        }
        HirKind::Class(Class::Bytes(_)) => return None,
        HirKind::Look(Look::Start) => out.push(Node::Start),
        HirKind::Look(Look::End) => out.push(Node::End),
        HirKind::Look(_) => return None,
        HirKind::Repetition(r) => out.push(repetition(r)?),
        HirKind::Capture(c) => {
            let index = usize::try_from(c.index).ok().filter(|&i| i < MAX_GROUPS)?;
            out.push(Node::Group {
                slot: index * 2,
                sub: nodes_of(&c.sub)?,
            });
        }
        HirKind::Concat(parts) => {
            for p in parts {
                push_nodes(p, out)?;
            }
        }
        HirKind::Alternation(alts) => out.push(Node::Alt(
            alts.iter()
                .map(nodes_of)
                .collect::<Option<Vec<_>>>()?
                .into(),
        )),
    }
    Some(())
}

fn nodes_of(hir: &Hir) -> Option<Box<[Node]>> {
    let mut nodes = Vec::new();
    push_nodes(hir, &mut nodes)?;
    Some(nodes.into())
}

/// A repetition: of one character's class, a run; of anything else that
/// cannot match nothing, a loop over it.
fn repetition(r: &regex_syntax::hir::Repetition) -> Option<Node> {
    let (min, max, greedy) = (r.min, r.max, r.greedy);
    let one = match nodes_of(&r.sub)?.as_ref() {
        [Node::Char(class)] => Some(class.clone()),
        [Node::Lit(text)] => {
            let s = std::str::from_utf8(text).ok()?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(CharClass::new(&[(c, c)])),
                _ => None,
            }
        }
        _ => None,
    };
    if let Some(class) = one {
        return Some(Node::Run {
            class,
            min,
            max,
            greedy,
        });
    }
    if r.sub.properties().minimum_len().is_none_or(|n| n == 0) {
        return None;
    }
    Some(Node::Rep {
        sub: nodes_of(&r.sub)?,
        min,
        max,
        greedy,
    })
}

/// Whether `nodes` could match at a byte `next` (false only when they
/// start with text that does not start with it): a run gives back
/// characters one at a time, and this skips the ones after which the
/// literal that follows cannot match without a step.
#[inline]
fn could_start(nodes: &[Node], next: Option<&u8>) -> bool {
    match nodes.first() {
        Some(Node::Lit(text)) => text.first().is_none_or(|b| Some(b) == next),
        _ => true,
    }
}

/// The search ran out of steps.
struct OverBudget;

type Step = Result<Option<usize>, OverBudget>;

/// What follows the nodes being matched: the rest of an enclosing
/// sequence, after (for a group) setting the group's end or (for a loop)
/// another turn.
struct Then<'a> {
    kind: ThenKind<'a>,
    next: Option<&'a Then<'a>>,
}

enum ThenKind<'a> {
    Seq(&'a [Node]),
    Close(usize, &'a [Node]),
    Again(&'a Node, u32, &'a [Node]),
}

struct Search<'h> {
    hay: &'h str,
    slots: Slots,
    budget: usize,
    /// Turns of loops under way (see [`MAX_TURNS`]).
    turns: u32,
}

impl Search<'_> {
    /// The end of the first match (in the crate's order) of `nodes` and
    /// then `then`, from `pos`.
    fn go(&mut self, nodes: &[Node], then: Option<&Then<'_>>, pos: usize) -> Step {
        self.budget = self.budget.checked_sub(1).ok_or(OverBudget)?;
        // Text, one character and anchors either match and move on or end
        // this path: they are stepped over in a loop, not a call each.
        let (mut nodes, mut pos) = (nodes, pos);
        let (node, rest) = loop {
            let Some((node, rest)) = nodes.split_first() else {
                return self.resume(then, pos);
            };
            let step = match node {
                Node::Lit(text) => match self.hay.as_bytes().get(pos..) {
                    Some(h) if h.starts_with(text) => Some(text.len()),
                    _ => None,
                },
                Node::Char(class) => class.at(self.hay, pos),
                Node::Start => (pos == 0).then_some(0),
                Node::End => (pos == self.hay.len()).then_some(0),
                _ => break (node, rest),
            };
            let Some(n) = step else { return Ok(None) };
            (nodes, pos) = (rest, pos + n);
        };
        match node {
            Node::Lit(_) | Node::Char(_) | Node::Start | Node::End => Ok(None),
            Node::Run {
                class,
                min,
                max,
                greedy,
            } => self.run(class, (*min, *max, *greedy), rest, then, pos),
            Node::Group { slot, sub } => {
                let t = Then {
                    kind: ThenKind::Close(slot + 1, rest),
                    next: then,
                };
                self.set(*slot, pos, |s| s.go(sub, Some(&t), pos))
            }
            Node::Alt(alts) => {
                let t = Then {
                    kind: ThenKind::Seq(rest),
                    next: then,
                };
                for alt in alts {
                    if let Some(end) = self.go(alt, Some(&t), pos)? {
                        return Ok(Some(end));
                    }
                }
                Ok(None)
            }
            Node::Rep { .. } => self.counted(|s| s.turn(node, 0, rest, then, pos)),
        }
    }

    /// Goes on with what follows, or ends the match.
    fn resume(&mut self, then: Option<&Then<'_>>, pos: usize) -> Step {
        let Some(t) = then else { return Ok(Some(pos)) };
        match t.kind {
            ThenKind::Seq(nodes) => self.go(nodes, t.next, pos),
            ThenKind::Close(slot, nodes) => self.set(slot, pos, |s| s.go(nodes, t.next, pos)),
            ThenKind::Again(node, count, nodes) => {
                self.counted(|s| s.turn(node, count, nodes, t.next, pos))
            }
        }
    }

    /// Runs `f` with `slot` at `pos`, and puts the slot back if it fails.
    fn set(&mut self, slot: usize, pos: usize, f: impl FnOnce(&mut Self) -> Step) -> Step {
        let Some(&saved) = self.slots.0.get(slot) else {
            return f(self);
        };
        self.slots.0[slot] = pos as u32;
        let found = f(self)?;
        if found.is_none() {
            self.slots.0[slot] = saved;
        }
        Ok(found)
    }

    /// A run of `class`: the longest first if greedy, the shortest first
    /// if not, each followed by `rest` and `then`.
    fn run(
        &mut self,
        class: &CharClass,
        (min, max, greedy): (u32, Option<u32>, bool),
        rest: &[Node],
        then: Option<&Then<'_>>,
        pos: usize,
    ) -> Step {
        let max = max.unwrap_or(u32::MAX);
        let mut end = pos;
        let mut count = 0;
        if greedy {
            while count < max
                && let Some(n) = class.at(self.hay, end)
            {
                end += n;
                count += 1;
            }
            while count >= min {
                if could_start(rest, self.hay.as_bytes().get(end))
                    && let Some(found) = self.go(rest, then, end)?
                {
                    return Ok(Some(found));
                }
                if count == min {
                    break;
                }
                end = self.back_one(end);
                count -= 1;
            }
            return Ok(None);
        }
        loop {
            if count >= min
                && let Some(found) = self.go(rest, then, end)?
            {
                return Ok(Some(found));
            }
            match class.at(self.hay, end) {
                Some(n) if count < max => {
                    end += n;
                    count += 1;
                }
                _ => return Ok(None),
            }
        }
    }

    /// The start of the character that ends at `end`.
    #[inline]
    fn back_one(&self, end: usize) -> usize {
        let bytes = self.hay.as_bytes();
        let mut at = end.saturating_sub(1);
        while at > 0 && bytes.get(at).is_some_and(|b| b & 0xC0 == 0x80) {
            at -= 1;
        }
        at
    }

    /// `f`, a turn of a loop, counted among the turns under way.
    fn counted(&mut self, f: impl FnOnce(&mut Self) -> Step) -> Step {
        if self.turns >= MAX_TURNS {
            return Err(OverBudget);
        }
        self.turns += 1;
        let found = f(self);
        self.turns -= 1;
        found
    }

    /// Turn `count` of the loop `node`: another turn first if greedy, the
    /// rest first if not (a turn never matches nothing, so this ends).
    fn turn(
        &mut self,
        node: &Node,
        count: u32,
        rest: &[Node],
        then: Option<&Then<'_>>,
        pos: usize,
    ) -> Step {
        let Node::Rep {
            sub,
            min,
            max,
            greedy,
        } = node
        else {
            return Ok(None);
        };
        let more = max.is_none_or(|m| count < m);
        let again = Then {
            kind: ThenKind::Again(node, count + 1, rest),
            next: then,
        };
        if count < *min {
            return self.go(sub, Some(&again), pos);
        }
        if *greedy {
            if more && let Some(end) = self.go(sub, Some(&again), pos)? {
                return Ok(Some(end));
            }
            return self.go(rest, then, pos);
        }
        if let Some(end) = self.go(rest, then, pos)? {
            return Ok(Some(end));
        }
        if more {
            return self.go(sub, Some(&again), pos);
        }
        Ok(None)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex_automata::{Anchored, Input, meta};

    /// The crate's anchored search from `start`, as slots.
    fn crate_says(re: &meta::Regex, hay: &str, start: usize) -> Option<Vec<Option<usize>>> {
        let mut caps = re.create_captures();
        let input = Input::new(hay).range(start..).anchored(Anchored::Yes);
        re.search_captures(&input, &mut caps);
        caps.is_match().then(|| {
            (0..caps.group_len())
                .flat_map(|i| {
                    let span = caps.get_group(i);
                    [span.map(|s| s.start), span.map(|s| s.end)]
                })
                .collect()
        })
    }

    fn both(pattern: &str) -> (meta::Regex, Program) {
        let hir = regex_syntax::Parser::new().parse(pattern).expect("parses");
        let re = meta::Regex::new(pattern).expect("compiles");
        let prog = Program::new(&hir).expect("a shape walked here");
        (re, prog)
    }

    fn same(re: &meta::Regex, prog: &Program, hay: &str, start: usize) -> Result<(), String> {
        let ours = match prog.captures(hay, start) {
            Found::Match(slots) => Some(
                (0..re.captures_len())
                    .flat_map(|i| {
                        let g = slots.get(i);
                        [g.map(|g| g.0), g.map(|g| g.1)]
                    })
                    .collect::<Vec<_>>(),
            ),
            Found::NoMatch => None,
            Found::GaveUp => return Err(format!("{hay:?} from {start}: the walk gave up")),
        };
        let want = crate_says(re, hay, start);
        if ours == want {
            Ok(())
        } else {
            Err(format!(
                "{hay:?} from {start}: ours {ours:?}, the crate's {want:?}"
            ))
        }
    }

    /// Regexes with each shape, and texts that take each path through
    /// them (matches, near misses, backtracking into a run, Unicode).
    #[test]
    fn each_shape_matches_as_the_crate_does() {
        let cases: &[(&str, &[&str])] = &[
            (
                r"(?P<n>-?\$?\d[\d,]*(?:\.\d+)?), stop=(?P<s>\d+)",
                &[
                    "1,234.5, stop=7",
                    "1,2,, stop=7",
                    "12, stop=",
                    "x",
                    "1, stop=7x",
                ],
            ),
            (r"a(?:(b)|(bc))c$", &["abc", "abcc", "abcd", "ac"]),
            (r"(a|ab)(c|bcd)?", &["abcd", "abc", "ab", "acd"]),
            (r"(?:(a)|b)+(c)?", &["ab", "ba", "abac", "c"]),
            (r"(.*?)-(\d*?)(x|)$", &["ab-12x", "a-b-1", "-", "é-٣x"]),
            (r"(\d{2,3})(\d{1,2}?)", &["12345", "12", "1", "١٢٣"]),
            (r"(?:(ab)+?)(a*)b", &["ababab", "abaab", "ab"]),
            (
                r"(?:x(\w+)\s){2,}$",
                &["xa xb ", "xa ", "xa xb xc ", "xa xb"],
            ),
            (r"(?i)stop (é+)", &["STOP ÉÉé", "stop e"]),
            (r"^(\S+) (.*)\)$", &["a b)", "a b) c)", "ab", " a)"]),
        ];
        for (pattern, hays) in cases {
            let (re, prog) = both(pattern);
            for hay in *hays {
                same(&re, &prog, hay, 0).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            }
        }
    }

    #[test]
    fn shapes_not_walked_are_refused() {
        for pattern in [r"\bstop", r"(?-u:\w)+", r"(a*)*", r"(?m)^a$"] {
            let hir = regex_syntax::Parser::new().parse(pattern).expect("parses");
            assert!(Program::new(&hir).is_none(), "{pattern}");
        }
        let groups = |n: usize| {
            regex_syntax::Parser::new()
                .parse(&"(a)".repeat(n))
                .expect("parses")
        };
        assert!(
            Program::new(&groups(MAX_GROUPS - 1)).is_some(),
            "15 groups and group 0"
        );
        assert!(
            Program::new(&groups(MAX_GROUPS)).is_none(),
            "a 16th group has no slots"
        );
    }

    /// A repeated group nests a few calls a turn: past `MAX_TURNS` the
    /// walk gives up (no thread runs out of stack), and the pattern's
    /// answer is then the crate's.
    #[test]
    fn a_loop_of_many_turns_gives_up_before_the_stack_does() {
        let (re, prog) = both(r"(?:(\w+) )+end$");
        let hay = format!("{}end", "ab ".repeat(100_000));
        assert_eq!(prog.captures(&hay, 0), Found::GaveUp);
        let (_, nested) = both(r"(?:(?:\w )+; )+end$");
        let hay = format!("{}end", format!("{}; ", "a ".repeat(200)).repeat(100));
        assert_eq!(nested.captures(&hay, 0), Found::GaveUp);
        let short = format!("{}end", "ab ".repeat(200));
        same(&re, &prog, &short, 0).unwrap();
        assert!(matches!(prog.captures(&short, 0), Found::Match(_)));
    }

    #[test]
    fn a_search_over_its_budget_gives_up() {
        let (_, prog) = both(r"\d*\d*\d*\d*\d*x");
        let hay = "1".repeat(200);
        assert_eq!(prog.captures(&hay, 0), Found::GaveUp);
        match prog.captures("11x", 0) {
            Found::Match(slots) => assert_eq!(slots.get(0), Some((0, 3))),
            other => panic!("{other:?}"),
        }
    }

    /// The default patterns' regexes.
    fn default_regexes() -> Vec<String> {
        crate::parse::patterns::PatternSet::load(true, &[])
            .expect("built-in patterns")
            .regexes()
    }

    /// A text the regex matches (proptest's generator takes no anchors, so
    /// it generates from the regex without its `^` and final `$`).
    fn text_for(pattern: &str) -> BoxedStrategy<String> {
        let body = pattern.strip_prefix('^').unwrap_or(pattern);
        let body = match body.strip_suffix('$') {
            Some(b) if !b.ends_with('\\') => b,
            _ => body,
        };
        proptest::string::string_regex(body)
            .expect("generates")
            .boxed()
    }

    /// A default pattern and texts it matches, each cut short or with a
    /// character changed.
    pub(crate) fn pattern_and_texts() -> impl Strategy<Value = (String, Vec<String>)> {
        let regexes = default_regexes();
        (0..regexes.len()).prop_flat_map(move |i| {
            let pattern = regexes[i].clone();
            let text = text_for(&pattern);
            let variant = (
                text,
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                prop::sample::select(&['0', ',', '.', ' ', ')', '$', '-', 'e', '%', 'x', '٣'][..]),
            )
                .prop_map(|(text, cut, edit, with)| {
                    let chars: Vec<char> = text.chars().collect();
                    if chars.is_empty() {
                        return vec![text];
                    }
                    let short = chars[..cut.index(chars.len())].iter().collect();
                    let mut changed = chars.clone();
                    changed[edit.index(chars.len())] = with;
                    vec![text, short, changed.into_iter().collect()]
                });
            (Just(pattern), proptest::collection::vec(variant, 1..4))
                .prop_map(|(p, v)| (p, v.concat()))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Every default pattern's regex on texts it matches, on those
        /// texts cut short or with a character changed, each with the
        /// pattern's lead before it as the engine sees it: the same match
        /// and groups as the crate.
        #[test]
        fn default_patterns_match_as_the_crate_does((pattern, texts) in pattern_and_texts()) {
            let (re, prog) = both(&pattern);
            for hay in &texts {
                for start in hay.char_indices().map(|(i, _)| i).take(3) {
                    let verdict = same(&re, &prog, hay, start);
                    prop_assert!(verdict.is_ok(), "{}: {}", pattern, verdict.unwrap_err());
                }
            }
        }
    }
}

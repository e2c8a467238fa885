//! The loop's side of live inputs: the table of inputs, their tokens and timers, one
//! wake list per live stream, demand, and the stop and shutdown hooks (the kinds and
//! their API are in `stream::input`).
//!
//! - Input `i` owns the tokens `INPUTS_BASE + i * SUBTOKENS + sub`, `sub` <
//!   [`SUBTOKENS`]: far above any slab key, below the loop's own tokens at the top.
//! - `Timer::Input { index, tag }`: `tag` `FEED_TIMER` is the feed's (fps cap slot,
//!   heartbeat), armed here from [`Feed::next_deadline`] after every call into the input
//!   (one timer armed at a time, re-armed only for an earlier deadline; a stale one that
//!   fires finds nothing due); any other tag is the kind's own, from
//!   [`InputCx::wake_at`].
//! - After every call into an input, a feed that published (or ended) puts its stream's
//!   wake list on the `woken` list; the loop wakes those connections in the same turn.
//! - Wake lists: a connection that starts streaming a live stream adds (key, serial) to
//!   that stream's list ([`WakeLists::add`]); entries of connections that left are
//!   dropped when the list is walked, or when they outnumber the stream's viewers.
//! - `push` inputs have no descriptor: their publishers are client connections, which
//!   leave frames at the stream's port; `Inputs::take_pushed` gives such an input its
//!   turn when its port has news (see `stream::input::push`).
//! - Demand: once a turn, after the reap, each input whose stream's viewers (or waiting
//!   snapshots) changed gets [`Input::on_demand`].
//! - Shutdown: `Inputs::shutdown` runs on every way out of the loop; it is also
//!   `Drop`, so a server dropped without serving (or unwinding) ends its children too.

use std::io;
use std::rc::Rc;

use mio::Registry;

use crate::clock::{Micros, tick_of_deadline};
use crate::routes::Route;
use crate::server::{Shared, Timer};
use crate::stream::input::push::PushPort;
use crate::stream::input::{Demand, Feed, Input, InputCx, InputSpec, Requests, SUBTOKENS};
use crate::stream::{Live, Stream};
use crate::wheel::Wheel;

/// The first input's first token.
pub(crate) const INPUTS_BASE: usize = 1 << (usize::BITS - 2);
/// Inputs at most: their tokens end far below the loop's own (`usize::MAX - 3` on).
const MAX_INPUTS: usize = 1 << 20;
/// The tag of the feed's own timer.
pub(crate) const FEED_TIMER: u32 = u32::MAX;

/// Input `index`'s descriptor `sub`, from a token in the inputs' range.
pub(crate) fn input_token(token: usize) -> Option<(usize, usize)> {
    let offset = token.checked_sub(INPUTS_BASE)?;
    (offset < MAX_INPUTS * SUBTOKENS).then_some((offset / SUBTOKENS, offset % SUBTOKENS))
}

/// The live streams' wake lists: (slab key, serial) of the connections streaming each.
#[derive(Debug, Default)]
pub struct WakeLists {
    lists: Vec<WakeList>,
}

/// A live stream, and its clients by (slab key, serial).
type WakeList = (Rc<Stream>, Vec<(usize, u32)>);

impl WakeLists {
    /// Adds a connection to `stream`'s list (made if there is none: the connection
    /// tests' streams have no input).
    pub fn add(&mut self, stream: &Rc<Stream>, key: usize, serial: u32) {
        let index = self.list_of(stream);
        self.lists[index].1.push((key, serial));
    }

    /// The index of `stream`'s list, made if new. Live streams are few: a scan.
    fn list_of(&mut self, stream: &Rc<Stream>) -> usize {
        match self.lists.iter().position(|(s, _)| Rc::ptr_eq(s, stream)) {
            Some(index) => index,
            None => {
                self.lists.push((stream.clone(), Vec::new()));
                self.lists.len() - 1
            }
        }
    }

    pub fn len(&self, list: usize) -> usize {
        self.lists.get(list).map_or(0, |(_, watchers)| watchers.len())
    }

    pub fn get(&self, list: usize, i: usize) -> (usize, u32) {
        self.lists[list].1[i]
    }

    /// The live stream of list `list`.
    pub fn stream(&self, list: usize) -> &Rc<Stream> {
        &self.lists[list].0
    }

    /// How many lists there are, and the viewers of list `list`'s stream.
    pub fn count(&self) -> usize {
        self.lists.len()
    }

    pub fn viewers(&self, list: usize) -> u64 {
        self.lists[list].0.viewers()
    }

    pub fn retain(&mut self, list: usize, keep: impl FnMut(&(usize, u32)) -> bool) {
        self.lists[list].1.retain(keep);
    }

    /// Every entry of every list (for the connection tests).
    pub fn all(&self) -> Vec<(usize, u32)> {
        self.lists.iter().flat_map(|(_, w)| w.iter().copied()).collect()
    }

    pub fn clear(&mut self) {
        for (_, watchers) in &mut self.lists {
            watchers.clear();
        }
    }
}

/// The inputs of `specs` (path, spec), each paired with its stream from the loop's
/// routes and a wake list.
pub(super) fn of_routes(specs: &[(String, InputSpec)], shared: &mut Shared) -> Result<Inputs, String> {
    let mut table = Vec::with_capacity(specs.len());
    for (path, spec) in specs {
        let stream = match shared.routes.get(path) {
            Some(Route::Stream(stream)) if stream.as_live().is_some() => stream.clone(),
            _ => return Err(format!("{path}: no live stream there")),
        };
        table.push((path.clone(), spec.clone(), stream));
    }
    Inputs::new(table, &mut shared.watchers).map_err(|e| e.to_string())
}

/// What a call into an input may use of the loop.
pub(crate) struct Env<'a> {
    pub now: Micros,
    pub registry: &'a Registry,
    pub scratch: &'a mut [u8],
    pub timers: &'a mut Wheel<Timer>,
}

/// One live stream's input.
#[derive(Debug)]
struct Slot {
    feed: Feed,
    input: Box<dyn Input>,
    stream: Rc<Stream>,
    /// Its stream's wake list.
    list: usize,
    /// The feed's timer in the wheel, by deadline.
    feed_armed: Option<Micros>,
    /// The demand it was last told of.
    demand: Demand,
    /// Bit `sub`: call `on_ready(sub)` again next turn.
    again: u8,
}

/// The table of inputs (see the module header).
#[derive(Debug)]
pub(crate) struct Inputs {
    slots: Vec<Slot>,
    requests: Requests,
    /// Wake lists to wake this turn.
    woken: Vec<usize>,
    shut: bool,
}

impl Inputs {
    /// The inputs of `specs` (path, spec, the built stream), each with a wake list.
    pub fn new(specs: Vec<(String, InputSpec, Rc<Stream>)>, lists: &mut WakeLists) -> io::Result<Inputs> {
        if specs.len() > MAX_INPUTS {
            return Err(io::Error::other(format!("more than {MAX_INPUTS} live streams")));
        }
        let slots = specs
            .into_iter()
            .map(|(path, spec, stream)| Slot {
                feed: Feed::new(&path, spec.source.kind(), stream.clone(), spec.options),
                input: spec.source.input(),
                list: lists.list_of(&stream),
                stream,
                feed_armed: None,
                demand: Demand::default(),
                again: 0,
            })
            .collect();
        Ok(Inputs {
            slots,
            requests: Requests::default(),
            woken: Vec::new(),
            shut: false,
        })
    }

    /// Starts every input; the first failure names its stream.
    pub fn start(&mut self, env: &mut Env<'_>) -> Result<(), String> {
        for index in 0..self.slots.len() {
            let mut result = Ok(());
            self.call(index, env, |input, cx| result = input.start(cx));
            if let Err(e) = result {
                let slot = &self.slots[index];
                return Err(format!("{}: {e}", slot.feed.path()));
            }
            // Once at the start, whatever the demand: an input that runs on demand
            // learns there is none yet.
            let demand = self.demand_of(index);
            self.slots[index].demand = demand;
            self.call(index, env, |input, cx| input.on_demand(demand, cx));
        }
        Ok(())
    }

    /// A readiness event for input `index`'s descriptor `sub`. One that already used
    /// its read budget this turn (its extra turn, given first, asked for another) waits
    /// for that next turn: one budget a turn, as before there were many inputs.
    pub fn ready(&mut self, index: usize, sub: usize, env: &mut Env<'_>) {
        let waiting = self
            .slots
            .get(index)
            .is_none_or(|slot| slot.again & (1 << sub) != 0);
        if !waiting {
            self.call(index, env, |input, cx| input.on_ready(sub, cx));
        }
    }

    /// Gives each `push` input whose port has news (frames a publishing connection left
    /// there, a publisher come or gone) its turn: twice a turn, before the connections'
    /// events (a publisher gone last turn is `waiting` in this turn's `/stats`) and after
    /// them (their frames go out in the same turn).
    pub fn take_pushed(&mut self, env: &mut Env<'_>) {
        for index in 0..self.slots.len() {
            let live = self.slots[index].stream.as_live();
            if live.and_then(Live::push_port).is_some_and(PushPort::has_news) {
                self.call(index, env, |input, cx| input.on_ready(0, cx));
            }
        }
    }

    /// Whether an input asked for another turn.
    pub fn wants_again(&self) -> bool {
        self.slots.iter().any(|slot| slot.again != 0)
    }

    /// Gives the inputs that asked for it another turn.
    pub fn give_again(&mut self, env: &mut Env<'_>) {
        for index in 0..self.slots.len() {
            let again = std::mem::take(&mut self.slots[index].again);
            for sub in (0..SUBTOKENS).filter(|sub| again & (1 << sub) != 0) {
                self.call(index, env, |input, cx| input.on_ready(sub, cx));
            }
        }
    }

    /// `Timer::Input { index, tag }` is due.
    pub fn on_timer(&mut self, index: usize, tag: u32, env: &mut Env<'_>) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if tag != FEED_TIMER {
            self.call(index, env, |input, cx| input.on_timer(tag, cx));
            return;
        }
        if slot.feed_armed.is_some_and(|at| env.now >= at) {
            slot.feed_armed = None;
        }
        slot.feed.on_timer(env.now);
        self.settle(index, env);
    }

    /// Tells each input whose demand changed (once a turn, after the reap).
    pub fn check_demand(&mut self, env: &mut Env<'_>) {
        for index in 0..self.slots.len() {
            self.tell_demand(index, env);
        }
    }

    /// A graceful stop begins.
    pub fn stop(&mut self, env: &mut Env<'_>) {
        for index in 0..self.slots.len() {
            self.call(index, env, |input, cx| input.on_stop(cx));
        }
    }

    /// The loop ends: every input releases what it holds (once).
    pub fn shutdown(&mut self) {
        if std::mem::replace(&mut self.shut, true) {
            return;
        }
        for slot in &mut self.slots {
            slot.input.shutdown();
        }
    }

    /// The wake lists to wake now; give the vector back with [`Inputs::put_woken`].
    pub fn take_woken(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.woken)
    }

    pub fn put_woken(&mut self, mut woken: Vec<usize>) {
        woken.clear();
        self.woken = woken;
    }

    /// Who wants input `index`'s stream now.
    fn demand_of(&self, index: usize) -> Demand {
        let stream = &self.slots[index].stream;
        Demand {
            viewers: stream.viewers(),
            snapshots: stream.as_live().map_or(0, |live| live.waiting()),
        }
    }

    fn tell_demand(&mut self, index: usize, env: &mut Env<'_>) {
        let demand = self.demand_of(index);
        if demand != self.slots[index].demand {
            self.slots[index].demand = demand;
            self.call(index, env, |input, cx| input.on_demand(demand, cx));
        }
    }

    /// Calls into input `index`, then carries out what it asked for.
    fn call(&mut self, index: usize, env: &mut Env<'_>, f: impl FnOnce(&mut dyn Input, &mut InputCx<'_>)) {
        let slot = &mut self.slots[index];
        let mut cx = InputCx {
            now: env.now,
            registry: env.registry,
            feed: &mut slot.feed,
            scratch: env.scratch,
            base: INPUTS_BASE + index * SUBTOKENS,
            requests: &mut self.requests,
        };
        f(&mut *slot.input, &mut cx);
        self.settle(index, env);
    }

    /// Arms the timers asked for and notes the viewers to wake.
    fn settle(&mut self, index: usize, env: &mut Env<'_>) {
        let slot = &mut self.slots[index];
        for (at, tag) in self.requests.timers.drain(..) {
            env.timers
                .insert(tick_of_deadline(at), Timer::Input { index, tag });
        }
        slot.again |= std::mem::take(&mut self.requests.again);
        if let Some(at) = slot.feed.next_deadline() {
            if slot.feed_armed.is_none_or(|armed| at < armed) {
                slot.feed_armed = Some(at);
                env.timers.insert(
                    tick_of_deadline(at),
                    Timer::Input {
                        index,
                        tag: FEED_TIMER,
                    },
                );
            }
        }
        if slot.feed.take_wake() {
            self.woken.push(slot.list);
        }
    }
}

impl Drop for Inputs {
    fn drop(&mut self) {
        self.shutdown();
    }
}

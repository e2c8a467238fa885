//! What a request gets: the route table (what each path serves), and [`respond::respond`], which
//! holds every routing decision.

pub mod access;
pub mod live_stats;
pub mod proxies;
pub mod respond;
pub mod stats;
pub mod view;

use std::rc::Rc;

use crate::stream::Stream;

#[derive(Clone, Debug)]
pub enum Route {
    Stream(Rc<Stream>),
    /// `GET /quit`: stop the server gracefully (only with `--allow-quit`).
    Quit,
    /// `GET /stats`: counters as JSON.
    Stats,
    /// `GET /metrics`: counters in the Prometheus text format.
    Metrics,
    /// `GET /view`: a page showing every image stream.
    View,
}

#[derive(Debug, Default)]
pub struct Routes {
    entries: Vec<(String, Route)>,
}

impl Routes {
    pub fn add(&mut self, path: &str, route: Route) {
        self.entries.push((path.to_owned(), route));
    }

    pub fn get(&self, path: &str) -> Option<&Route> {
        self.entries
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, route)| route)
    }

    /// The route of the one stream served, if exactly one is.
    pub fn only_stream(&self) -> Option<&Route> {
        let mut streams = self
            .entries
            .iter()
            .map(|(_, route)| route)
            .filter(|route| matches!(route, Route::Stream(_)));
        match (streams.next(), streams.next()) {
            (Some(route), None) => Some(route),
            _ => None,
        }
    }

    pub fn streams(&self) -> impl Iterator<Item = (&str, &Rc<Stream>)> {
        self.entries.iter().filter_map(|(path, route)| match route {
            Route::Stream(stream) => Some((path.as_str(), stream)),
            _ => None,
        })
    }
}

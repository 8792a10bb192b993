//! On-call notices and signed approve/reject links: which notices an
//! incident owes ([`due`]), what they say ([`notice`]), sending and
//! recording them ([`deliver`]), the links' signatures ([`links`]), the
//! pages that answer them ([`server`]) and how a waiting action is shown
//! to the person asked ([`shown`]).

pub mod deliver;
pub mod due;
pub mod links;
pub mod notice;
pub mod server;
pub mod shown;

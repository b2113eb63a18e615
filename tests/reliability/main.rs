//! The reliability suite: the real daemon and real ffmpeg against hostile requests, a full disk,
//! killed processes and damaged sources. Every case ends by decoding whatever the job left as its
//! final file (`ffmpeg -v error -i FILE -f null -` must print nothing).

#[path = "../common/mod.rs"]
mod common;
mod seams;

//! Waking up when files change: inotify on the directories a pipeline reads, and a plain
//! timer when inotify is not there (no more watches, another kind of file system).

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

/// What woke the collector.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Woke {
    /// A file was created, moved or deleted: look for files again.
    pub names_changed: bool,
}

#[derive(Debug)]
pub struct Watcher {
    fd: Option<OwnedFd>,
    watched: HashMap<PathBuf, i32>,
    buf: Vec<MaybeUninit<u8>>,
}

impl Watcher {
    /// A watcher; without inotify it only waits.
    pub fn new() -> Self {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .map_err(|e| tracing::warn!(error = %e, "inotify unavailable, polling"))
            .ok();
        Self { fd, watched: HashMap::new(), buf: vec![MaybeUninit::uninit(); 64 * 1024] }
    }

    pub fn is_active(&self) -> bool {
        self.fd.is_some()
    }

    /// Watches exactly `dirs`.
    pub fn watch(&mut self, dirs: &[PathBuf]) {
        let Some(fd) = &self.fd else { return };
        self.watched.retain(|dir, wd| {
            let keep = dirs.contains(dir);
            if !keep {
                let _ = inotify::remove_watch(fd, *wd);
            }
            keep
        });
        for dir in dirs {
            if self.watched.contains_key(dir) {
                continue;
            }
            let flags = WatchFlags::CREATE
                | WatchFlags::DELETE
                | WatchFlags::MOVED_FROM
                | WatchFlags::MOVED_TO
                | WatchFlags::MODIFY
                | WatchFlags::CLOSE_WRITE;
            match inotify::add_watch(fd, Path::new(dir), flags) {
                Ok(wd) => {
                    self.watched.insert(dir.clone(), wd);
                }
                Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "not watched; polled"),
            }
        }
    }

    /// Waits for a change or `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Woke {
        let Some(fd) = &self.fd else {
            std::thread::sleep(timeout);
            return Woke { names_changed: true };
        };
        let ts = Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: i64::from(timeout.subsec_nanos()) };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        if poll(&mut fds, Some(&ts)).unwrap_or(0) == 0 {
            return Woke::default();
        }
        let mut woke = Woke::default();
        let mut reader = inotify::Reader::new(fd, &mut self.buf);
        let names = ReadFlags::CREATE
            | ReadFlags::DELETE
            | ReadFlags::MOVED_FROM
            | ReadFlags::MOVED_TO
            | ReadFlags::QUEUE_OVERFLOW
            | ReadFlags::IGNORED;
        while let Ok(event) = reader.next() {
            if event.events().intersects(names) {
                woke.names_changed = true;
            }
        }
        woke
    }
}

impl Default for Watcher {
    fn default() -> Self {
        Self::new()
    }
}

//! BPF maps owned by user space: created here, reused by both instances of the XDP program
//! (libbpf's `bpf_map__reuse_fd`), closed with the last file descriptor. Nothing is pinned,
//! so a killed xvsd leaves no map behind.

use libbpf_sys as bpf;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A map file descriptor and the sizes its keys and values must have.
#[derive(Debug)]
pub struct BpfMap {
    fd: OwnedFd,
    key_size: usize,
    value_size: usize,
}

fn check(rc: i32) -> io::Result<i32> {
    if rc < 0 {
        Err(io::Error::from_raw_os_error(-rc))
    } else {
        Ok(rc)
    }
}

impl BpfMap {
    /// Creates a map of `map_type` for `max_entries` keys `K` and values `V`.
    pub fn create<K, V>(
        map_type: bpf::bpf_map_type,
        name: &CStr,
        max_entries: u32,
        flags: u32,
    ) -> io::Result<Self> {
        let opts = bpf::bpf_map_create_opts {
            sz: std::mem::size_of::<bpf::bpf_map_create_opts>() as _,
            map_flags: flags,
            ..Default::default()
        };
        // Safety: name is a valid C string, opts is initialised; a plain syscall wrapper.
        let fd = check(unsafe {
            bpf::bpf_map_create(
                map_type,
                name.as_ptr(),
                std::mem::size_of::<K>() as u32,
                std::mem::size_of::<V>() as u32,
                max_entries,
                &opts,
            )
        })?;
        Ok(BpfMap {
            // Safety: a fresh descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            key_size: std::mem::size_of::<K>(),
            value_size: std::mem::size_of::<V>(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn sizes<K, V>(&self) {
        debug_assert_eq!(std::mem::size_of::<K>(), self.key_size);
        debug_assert_eq!(std::mem::size_of::<V>(), self.value_size);
    }

    /// Inserts or replaces `key`.
    pub fn update<K, V>(&self, key: &K, value: &V) -> io::Result<()> {
        self.sizes::<K, V>();
        // Safety: key and value point to initialised values of the map's sizes.
        check(unsafe {
            bpf::bpf_map_update_elem(
                self.fd(),
                (key as *const K).cast(),
                (value as *const V).cast(),
                bpf::BPF_ANY as u64,
            )
        })
        .map(drop)
    }

    /// Deletes `key`; an absent key is not an error.
    pub fn delete<K>(&self, key: &K) -> io::Result<()> {
        debug_assert_eq!(std::mem::size_of::<K>(), self.key_size);
        // Safety: the key points to an initialised value of the map's key size.
        match check(unsafe { bpf::bpf_map_delete_elem(self.fd(), (key as *const K).cast()) }) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.map(drop),
        }
    }

    /// The value of `key`, if present.
    pub fn lookup<K, V: Copy>(&self, key: &K) -> io::Result<Option<V>> {
        self.sizes::<K, V>();
        let mut value = std::mem::MaybeUninit::<V>::uninit();
        // Safety: key is initialised; value has room for one value of the map's size.
        let rc = unsafe {
            bpf::bpf_map_lookup_elem(
                self.fd(),
                (key as *const K).cast(),
                value.as_mut_ptr().cast(),
            )
        };
        match check(rc) {
            // Safety: the kernel filled the value.
            Ok(_) => Ok(Some(unsafe { value.assume_init() })),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Each possible CPU's value of `key` in a per-CPU map (values 8-byte aligned, as the
    /// kernel lays them out).
    pub fn lookup_percpu<K, V: Copy + Default>(&self, key: &K) -> io::Result<Vec<V>> {
        debug_assert_eq!(std::mem::size_of::<V>() % 8, 0);
        self.sizes::<K, V>();
        let mut values = vec![V::default(); possible_cpus()?];
        // Safety: `values` has room for one value per possible CPU.
        check(unsafe {
            bpf::bpf_map_lookup_elem(
                self.fd(),
                (key as *const K).cast(),
                values.as_mut_ptr().cast(),
            )
        })?;
        Ok(values)
    }

    /// Inserts or replaces every `keys[i]` with `values[i]`, in one system call where the
    /// kernel allows it. Returns the index of each pair the map refused (full), with why.
    pub fn update_many<K, V>(&self, keys: &[K], values: &[V]) -> Vec<(usize, io::Error)> {
        self.sizes::<K, V>();
        assert_eq!(keys.len(), values.len());
        let mut refused = Vec::new();
        let mut start = 0;
        while start < keys.len() {
            let mut count = (keys.len() - start) as u32;
            let opts = batch_opts();
            // Safety: keys and values hold `count` initialised elements from `start`.
            let rc = unsafe {
                bpf::bpf_map_update_batch(
                    self.fd(),
                    keys[start..].as_ptr().cast(),
                    values[start..].as_ptr().cast(),
                    &mut count,
                    &opts,
                )
            };
            if rc >= 0 {
                break;
            }
            // `count` elements went in; the next one failed: note it and go on after it.
            let failed = start + count as usize;
            if failed >= keys.len() {
                break;
            }
            refused.push((failed, io::Error::from_raw_os_error(-rc)));
            start = failed + 1;
        }
        refused
    }

    /// Deletes every key of `keys` (absent ones are skipped), in one system call where the
    /// kernel allows it.
    pub fn delete_many<K>(&self, keys: &[K]) -> io::Result<()> {
        debug_assert_eq!(std::mem::size_of::<K>(), self.key_size);
        let mut start = 0;
        while start < keys.len() {
            let mut count = (keys.len() - start) as u32;
            let opts = batch_opts();
            // Safety: keys holds `count` initialised elements from `start`.
            let rc = unsafe {
                bpf::bpf_map_delete_batch(
                    self.fd(),
                    keys[start..].as_ptr().cast(),
                    &mut count,
                    &opts,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            if -rc != libc::ENOENT {
                return Err(io::Error::from_raw_os_error(-rc));
            }
            // The key after the `count` deleted ones was absent: skip it.
            start += count as usize + 1;
        }
        Ok(())
    }

    /// Every (key, value) of a hash map, read in batches of up to 4096 entries.
    pub fn entries<K: Copy + Default, V: Copy + Default>(&self) -> io::Result<Vec<(K, V)>> {
        self.sizes::<K, V>();
        const BATCH: usize = 4096;
        let mut out = Vec::new();
        let mut keys = vec![K::default(); BATCH];
        let mut values = vec![V::default(); BATCH];
        // The kernel's cursor: opaque, of the key's size at least (4 bytes minimum for hash).
        let mut cursor = vec![0u8; self.key_size.max(8)];
        let mut first = true;
        loop {
            let mut count = BATCH as u32;
            let opts = batch_opts();
            let in_batch = if first {
                std::ptr::null_mut()
            } else {
                cursor.as_mut_ptr().cast()
            };
            // Safety: keys/values hold BATCH elements; cursor holds at least a key.
            let rc = unsafe {
                bpf::bpf_map_lookup_batch(
                    self.fd(),
                    in_batch,
                    cursor.as_mut_ptr().cast(),
                    keys.as_mut_ptr().cast(),
                    values.as_mut_ptr().cast(),
                    &mut count,
                    &opts,
                )
            };
            first = false;
            let n = count as usize;
            out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
            if rc < 0 {
                if -rc == libc::ENOENT {
                    return Ok(out);
                }
                return Err(io::Error::from_raw_os_error(-rc));
            }
        }
    }
}

fn batch_opts() -> bpf::bpf_map_batch_opts {
    bpf::bpf_map_batch_opts {
        sz: std::mem::size_of::<bpf::bpf_map_batch_opts>() as _,
        ..Default::default()
    }
}

/// The number of possible CPUs: the length of a per-CPU map's value array.
pub fn possible_cpus() -> io::Result<usize> {
    // Safety: a plain query.
    let n = unsafe { bpf::libbpf_num_possible_cpus() };
    check(n).map(|n| n as usize)
}

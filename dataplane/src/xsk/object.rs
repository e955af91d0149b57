//! A BPF object (an ELF image a build script compiled with clang) loaded into the kernel
//! with libbpf, and closed when dropped: the steering program's ([`super::program`]) and the
//! benchmark's XDP generator and sink.

use super::XskError;
use libbpf_sys as bpf;
use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

/// A loaded object; its programs and maps live until it is dropped.
pub struct BpfObject {
    object: *mut bpf::bpf_object,
    name: &'static CStr,
}

// Safety: the libbpf object is only used through &self/&mut self of this value; libbpf keeps
// no thread-local state for it and its program and map fds are plain file descriptors.
unsafe impl Send for BpfObject {}

impl BpfObject {
    /// Opens `image` as object `name`, makes each of `maps` (a map name of the object and a
    /// live map of the same layout) the map the object uses under that name, and loads it.
    pub fn load(
        image: &'static [u8],
        name: &'static CStr,
        maps: &[(&CStr, RawFd)],
    ) -> Result<Self, XskError> {
        let opts = bpf::bpf_object_open_opts {
            sz: std::mem::size_of::<bpf::bpf_object_open_opts>() as _,
            object_name: name.as_ptr(),
            ..Default::default()
        };
        // Safety: image is a valid ELF image that lives for 'static; opts is initialised.
        let object =
            unsafe { bpf::bpf_object__open_mem(image.as_ptr().cast(), image.len() as _, &opts) };
        if object.is_null() {
            return Err(XskError::os(
                format!("opening BPF object {}", name.to_string_lossy()),
                io::Error::last_os_error(),
            ));
        }
        // From here on, `this` owns the object and closes it on every error path.
        let this = BpfObject { object, name };
        for (map_name, fd) in maps {
            // Safety: object is opened, not loaded; map_name is a valid C string.
            let map = unsafe { bpf::bpf_object__find_map_by_name(object, map_name.as_ptr()) };
            let rc = if map.is_null() {
                -libc::ENOENT
            } else {
                // Safety: map belongs to the object; fd is a live map of the same layout.
                unsafe { bpf::bpf_map__reuse_fd(map, *fd) }
            };
            if rc < 0 {
                return Err(XskError::os(
                    format!(
                        "sharing map {} with BPF object {}",
                        map_name.to_string_lossy(),
                        name.to_string_lossy()
                    ),
                    io::Error::from_raw_os_error(-rc),
                ));
            }
        }
        // Safety: object is a valid, opened bpf_object.
        let rc = unsafe { bpf::bpf_object__load(object) };
        if rc < 0 {
            return Err(XskError::os(
                format!(
                    "loading BPF object {} into the kernel (needs root / CAP_BPF+CAP_NET_ADMIN)",
                    name.to_string_lossy()
                ),
                io::Error::from_raw_os_error(-rc),
            ));
        }
        Ok(this)
    }

    /// The file descriptor of program `name`.
    pub fn prog_fd(&self, name: &CStr) -> Result<RawFd, XskError> {
        // Safety: the object is loaded; name is a valid C string.
        let prog = unsafe { bpf::bpf_object__find_program_by_name(self.object, name.as_ptr()) };
        if prog.is_null() {
            return Err(self.missing("program", name));
        }
        // Safety: prog belongs to the loaded object.
        Ok(unsafe { bpf::bpf_program__fd(prog) })
    }

    /// The file descriptor of map `name`.
    pub fn map_fd(&self, name: &CStr) -> Result<RawFd, XskError> {
        // Safety: the object is loaded and name is a valid C string.
        let fd = unsafe { bpf::bpf_object__find_map_fd_by_name(self.object, name.as_ptr()) };
        if fd < 0 {
            return Err(self.missing("map", name));
        }
        Ok(fd)
    }

    fn missing(&self, what: &str, name: &CStr) -> XskError {
        XskError::Setup(format!(
            "{what} {} missing from BPF object {}",
            name.to_string_lossy(),
            self.name.to_string_lossy()
        ))
    }
}

impl Drop for BpfObject {
    fn drop(&mut self) {
        // Safety: the object came from bpf_object__open_mem and is closed exactly once.
        unsafe { bpf::bpf_object__close(self.object) };
    }
}

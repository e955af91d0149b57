//! What the connection table asks of the hardware, and the only `unsafe` of
//! [`crate::conntrack`]: memory on huge pages ([`HugeVec`]), a prefetch hint ([`prefetch`])
//! and one SIMD compare ([`lanes_equal`]).
//!
//! [`commit`] makes the kernel back reserved memory now, so that no first touch faults on the
//! hot path.
//!
//! [`HugeVec`] is a vector of fixed capacity whose storage, when it takes at least one huge
//! page (2 MiB), is 2 MiB-aligned, a whole number of huge pages long and advised with
//! `madvise(MADV_HUGEPAGE)` before anything touches it. With transparent huge pages in
//! `always` or `madvise` mode the kernel then backs it with 2 MiB pages, so a lookup in a table
//! of hundreds of MB takes one TLB entry per 2 MiB instead of one per 4 KiB. Where THP is off
//! (or the kernel refuses) `madvise` fails and nothing else changes: 4 KiB pages, silently.
//! The storage comes from the global allocator (an aligned `Layout`), so allocation counting
//! (the no-allocation test, `dataplane/tests/conntrack_memory.rs`) sees it as before; glibc
//! serves an allocation this large from a fresh `mmap`, which only the vector itself touches.
//!
//! Elements are written as they are pushed, so pages are committed as the vector fills, as a
//! `Vec` reserved with `with_capacity` would be, unless its owner [`commit`]s the spare
//! capacity.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Transparent huge page size on x86_64 and (4 KiB granule) aarch64.
pub const HUGE_PAGE: usize = 2 << 20;

/// A vector of at most `capacity` elements that never reallocates, on huge pages where the
/// kernel allows (see the module documentation).
pub struct HugeVec<T> {
    ptr: NonNull<T>,
    len: usize,
    capacity: usize,
    /// What was allocated (size 0: nothing).
    layout: Layout,
}

// SAFETY: a `HugeVec<T>` owns its elements exactly as a `Vec<T>` does (unique pointer to its
// own allocation, no interior sharing), so it may move to or be shared with another thread
// whenever `T` may.
unsafe impl<T: Send> Send for HugeVec<T> {}
// SAFETY: as for `Send`: `&HugeVec<T>` only gives out `&T`.
unsafe impl<T: Sync> Sync for HugeVec<T> {}

impl<T> HugeVec<T> {
    /// An empty vector with room for `capacity` elements, its storage reserved now (and
    /// advised for huge pages when it takes at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        assert!(std::mem::size_of::<T>() > 0, "no zero-sized elements");
        let layout = Self::layout_for(capacity);
        if layout.size() == 0 {
            return HugeVec {
                ptr: NonNull::dangling(),
                len: 0,
                capacity: 0,
                layout,
            };
        }
        // SAFETY: `layout` has a non-zero size (checked above).
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            handle_alloc_error(layout)
        };
        if layout.align() == HUGE_PAGE {
            // SAFETY: `raw..raw + size` is our own fresh allocation, 2 MiB-aligned and a whole
            // number of 2 MiB pages long (see `layout_for`); MADV_HUGEPAGE only changes how the
            // kernel backs those pages, never their contents or validity. Its failure (THP
            // disabled, old kernel) is the documented silent fallback.
            unsafe {
                libc::madvise(raw.cast(), layout.size(), libc::MADV_HUGEPAGE);
            }
        }
        HugeVec {
            ptr,
            len: 0,
            capacity,
            layout,
        }
    }

    /// The allocation for `capacity` elements: whole huge pages, 2 MiB-aligned, when it takes
    /// at least one; otherwise exactly what a `Vec` would take.
    fn layout_for(capacity: usize) -> Layout {
        let bytes = std::mem::size_of::<T>()
            .checked_mul(capacity)
            .expect("HugeVec capacity overflows");
        let layout = if bytes >= HUGE_PAGE && std::mem::align_of::<T>() <= HUGE_PAGE {
            Layout::from_size_align(bytes.next_multiple_of(HUGE_PAGE), HUGE_PAGE)
        } else {
            Layout::array::<T>(capacity)
        };
        layout.expect("HugeVec layout")
    }

    /// Appends `value`. Panics if the vector is full (callers size it for their maximum).
    #[inline]
    pub fn push(&mut self, value: T) {
        assert!(self.len < self.capacity, "HugeVec is full");
        // SAFETY: `len < capacity`, so the slot is inside the allocation, and it holds no
        // initialised element (elements are exactly `0..len`).
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
    }

    /// Bytes allocated for it (whole huge pages when it takes at least one).
    pub fn allocated_bytes(&self) -> usize {
        self.layout.size()
    }

    /// The room left for elements (`capacity - len` of them), uninitialised, as
    /// `Vec::spare_capacity_mut`.
    pub fn spare_capacity_mut(&mut self) -> &mut [MaybeUninit<T>] {
        // SAFETY: slots `len..capacity` lie inside the allocation (or there are none, at a
        // dangling but aligned pointer) and hold no initialised element; `MaybeUninit` asks
        // nothing of their contents, and `&mut self` makes the borrow unique.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.as_ptr().add(self.len).cast::<MaybeUninit<T>>(),
                self.capacity - self.len,
            )
        }
    }
}

/// The smallest page size of the architectures xvs runs on: [`commit`] writes once per page
/// of this size (more often than needed on larger pages, which is harmless).
const PAGE: usize = 4096;

/// Makes the kernel back `spare` with memory now: one write per page, whose contents stay
/// uninitialised as far as Rust is concerned. Memory reserved at start is otherwise faulted
/// in by its first touch on the hot path, and with transparent huge pages each such fault
/// zeroes 2 MiB while the worker waits: a fresh xvsd's first few thousand connections once
/// stalled its worker for 45 ms, long enough for the 256-frame veth ring to overflow.
pub fn commit<T>(spare: &mut [MaybeUninit<T>]) {
    let bytes = std::mem::size_of_val(spare);
    let base = spare.as_mut_ptr().cast::<u8>();
    for offset in (0..bytes).step_by(PAGE) {
        // SAFETY: `offset < bytes`, so the byte is inside `spare`, which is borrowed uniquely;
        // `MaybeUninit<T>` may hold any bytes. Volatile, so that the write is not dropped as
        // dead: nothing reads it, the page fault is the point.
        unsafe { base.add(offset).write_volatile(0) };
    }
}

impl<T> Deref for HugeVec<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` is valid for `capacity >= len` elements (or dangling with `len == 0`)
        // and elements `0..len` are initialised; `&self` forbids writes meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for HugeVec<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeVec<T> {
    fn drop(&mut self) {
        // SAFETY: elements `0..len` are initialised and dropped exactly once, here.
        unsafe { std::ptr::drop_in_place(&mut **self as *mut [T]) };
        if self.layout.size() != 0 {
            // SAFETY: `ptr` came from `alloc(self.layout)` and is freed once.
            unsafe { dealloc(self.ptr.as_ptr().cast(), self.layout) };
        }
    }
}

/// Asks the CPU to bring the cache line holding `value` closer (into L1), without waiting for
/// it: a hint, never a fault, so any address will do. A no-op where there is no stable
/// prefetch instruction.
#[inline(always)]
pub fn prefetch<T>(value: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 reads nothing architecturally and cannot fault, whatever the address;
    // SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(value.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Bit `i` set for each `lanes[i]` equal to `value`, without a branch: one SSE2 compare on
/// x86_64, a plain loop elsewhere.
#[inline]
pub fn lanes_equal(lanes: &[u16; 8], value: u16) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi16,
        };
        // SAFETY: SSE2 is part of the x86_64 baseline, so these instructions exist on every
        // CPU this code runs on; the unaligned load reads exactly the 16 bytes of `lanes`.
        let bytes = unsafe {
            let v = _mm_loadu_si128(lanes.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi16(v, _mm_set1_epi16(value as i16))) as u32
        };
        // Two mask bits per 16-bit lane: keep the lower, then squeeze them to one bit per lane.
        let x = bytes & 0x5555;
        let x = (x | x >> 1) & 0x3333;
        let x = (x | x >> 2) & 0x0f0f;
        (x | x >> 4) & 0x00ff
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (0..8).fold(0, |m, i| m | u32::from(lanes[i] == value) << i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_equal_sets_one_bit_per_equal_lane() {
        let lanes = [7, 1, 7, 7, 0, 0, 65535, 7];
        assert_eq!(lanes_equal(&lanes, 7), 0b1000_1101);
        assert_eq!(lanes_equal(&lanes, 0), 0b0011_0000);
        assert_eq!(lanes_equal(&lanes, 65535), 0b0100_0000);
        assert_eq!(lanes_equal(&lanes, 2), 0);
    }

    /// Whether each page of `bytes` bytes at `addr` (page-aligned) is resident, by mincore(2).
    fn resident_pages(addr: *const u8, bytes: usize) -> Vec<bool> {
        let pages = bytes.div_ceil(PAGE);
        let mut flags = vec![0u8; pages];
        // SAFETY: `addr..addr + bytes` is mapped (our own allocation) and `flags` has a byte
        // per page of it.
        let rc = unsafe { libc::mincore(addr as *mut _, bytes, flags.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        flags.iter().map(|f| f & 1 == 1).collect()
    }

    #[test]
    fn commit_makes_every_page_of_the_spare_capacity_resident() {
        // 8 huge pages' worth: a fresh mmap from the allocator, so not resident before.
        let mut v: HugeVec<u64> = HugeVec::with_capacity(8 * HUGE_PAGE / 8);
        let (addr, bytes) = (v.ptr.as_ptr() as *const u8, v.allocated_bytes());
        assert!(
            resident_pages(addr, bytes).iter().any(|r| !r),
            "a fresh reservation is already resident: this test cannot tell"
        );
        v.push(1);
        commit(v.spare_capacity_mut());
        let resident = resident_pages(addr, bytes);
        assert!(
            resident.iter().all(|r| *r),
            "{} of {} pages not resident after commit",
            resident.iter().filter(|r| !**r).count(),
            resident.len()
        );
        assert_eq!(v[0], 1, "commit leaves the elements alone");
    }

    #[test]
    fn pushes_and_reads_back() {
        let mut v = HugeVec::with_capacity(3);
        assert!(v.is_empty());
        for i in 0..3u64 {
            v.push(i * 10);
        }
        assert_eq!(&*v, &[0, 10, 20]);
        v[1] = 11;
        assert_eq!(v[1], 11);
        assert_eq!(v.allocated_bytes(), 24);
    }

    #[test]
    #[should_panic(expected = "full")]
    fn refuses_to_grow() {
        let mut v = HugeVec::with_capacity(1);
        v.push(1u8);
        v.push(2u8);
    }

    #[test]
    fn large_vectors_take_whole_aligned_huge_pages() {
        let v = HugeVec::<[u8; 48]>::with_capacity(50_000);
        assert_eq!(v.allocated_bytes(), 2 * HUGE_PAGE);
        assert_eq!(v.ptr.as_ptr() as usize % HUGE_PAGE, 0);
        let empty = HugeVec::<u32>::with_capacity(0);
        assert_eq!((empty.len(), empty.allocated_bytes()), (0, 0));
    }

    #[test]
    fn drops_its_elements() {
        let counter = std::rc::Rc::new(());
        let mut v = HugeVec::with_capacity(4);
        v.push(std::rc::Rc::clone(&counter));
        v.push(std::rc::Rc::clone(&counter));
        assert_eq!(std::rc::Rc::strong_count(&counter), 3);
        drop(v);
        assert_eq!(std::rc::Rc::strong_count(&counter), 1);
    }
}

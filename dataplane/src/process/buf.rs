//! [`FrameBuf`]: what [`super::process`] may do to a frame's length. Most verdicts rewrite a
//! frame in place; a tunnel adds headers in front of the IP packet, and an ICMP error built in
//! a frame's place ("fragmentation needed") is shorter than it. The worker's UMEM frames have
//! room up to their data segment's size; a `Vec` (tests, fuzzing) any; a plain slice none.

/// A frame's bytes, and the room its buffer has to change their length.
pub trait FrameBuf {
    /// The frame, as long as it is now.
    fn bytes(&mut self) -> &mut [u8];
    /// Makes the frame `len` bytes long, keeping its first bytes (new ones are unspecified);
    /// `false`, and nothing changed, when the buffer cannot hold `len` bytes.
    fn set_len(&mut self, len: usize) -> bool;
}

/// A frame that cannot change its length.
impl FrameBuf for [u8] {
    #[inline]
    fn bytes(&mut self) -> &mut [u8] {
        self
    }

    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        len == self.len()
    }
}

/// A fixed-size frame (benchmarks' batches): no room either.
impl<const N: usize> FrameBuf for [u8; N] {
    #[inline]
    fn bytes(&mut self) -> &mut [u8] {
        self
    }

    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        len == N
    }
}

impl FrameBuf for Vec<u8> {
    #[inline]
    fn bytes(&mut self) -> &mut [u8] {
        self
    }

    fn set_len(&mut self, len: usize) -> bool {
        self.resize(len, 0);
        true
    }
}

/// Opens `len` bytes at `at` in `frame`, moving what follows; `false` (nothing changed) if its
/// buffer has no room.
pub(super) fn insert_gap<F: FrameBuf + ?Sized>(frame: &mut F, at: usize, len: usize) -> bool {
    let old = frame.bytes().len();
    if at > old || !frame.set_len(old + len) {
        return false;
    }
    frame.bytes().copy_within(at..old, at + len);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_moves_the_tail_and_a_slice_has_no_room() {
        let mut v = vec![1u8, 2, 3, 4];
        assert!(insert_gap(&mut v, 1, 2));
        assert_eq!((v.len(), v[0], &v[3..]), (6, 1, &[2, 3, 4][..]));
        let mut a = [1u8, 2, 3];
        assert!(!insert_gap(&mut a[..], 1, 2));
        assert_eq!(a, [1, 2, 3]);
        assert!(!insert_gap(&mut v, 7, 1), "past the end");
        assert!(FrameBuf::set_len(&mut a[..], 3));
        assert!(!FrameBuf::set_len(&mut a[..], 2));
    }
}

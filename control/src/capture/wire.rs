//! The stream a capture sends after its acknowledgement line: binary records, little-endian,
//! each a kind byte followed by its body.
//!
//! - [`Record::Frame`] (kind 1): interface side (0 external, 1 internal), direction (0
//!   received, 1 transmitted), 2 reserved bytes, the frame's length on the wire (u32), the
//!   captured length (u32, at most [`SNAPLEN`]), the time (u64 ns since the Unix epoch), then
//!   the captured bytes.
//! - [`Record::End`] (kind 2): frames lost to the capture, u64: those the workers could not
//!   queue (the tap's ring was full) and those this capture's reader was too slow for. The
//!   last record of a capture that ended by itself (COUNT reached, the daemon stopping).

use std::io::{self, Read, Write};

/// Bytes of a frame kept by a capture: what the workers' tap copies.
pub use xvs_dataplane::capture::SNAPLEN;

const KIND_FRAME: u8 = 1;
const KIND_END: u8 = 2;

/// The interface a frame was seen on, by its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    External,
    Internal,
}

/// Whether the director received or transmitted the frame there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Received,
    Transmitted,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    pub side: Side,
    pub direction: Direction,
    /// Its length on the wire; `data` may be shorter (at most [`SNAPLEN`]).
    pub orig_len: u32,
    /// When the director saw it, ns since the Unix epoch.
    pub ts_ns: u64,
    pub data: Vec<u8>,
}

/// What the capture stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Frame(CapturedFrame),
    End {
        /// Frames the tap's ring had no room for.
        ring_drops: u64,
        /// Frames this capture's reader did not take in time.
        reader_drops: u64,
    },
}

impl Record {
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        match self {
            Record::Frame(f) => {
                let mut head = [0u8; 21];
                head[0] = KIND_FRAME;
                head[1] = matches!(f.side, Side::Internal) as u8;
                head[2] = matches!(f.direction, Direction::Transmitted) as u8;
                head[5..9].copy_from_slice(&f.orig_len.to_le_bytes());
                head[9..13].copy_from_slice(&(f.data.len() as u32).to_le_bytes());
                head[13..21].copy_from_slice(&f.ts_ns.to_le_bytes());
                out.write_all(&head)?;
                out.write_all(&f.data)
            }
            Record::End {
                ring_drops,
                reader_drops,
            } => {
                let mut body = [0u8; 17];
                body[0] = KIND_END;
                body[1..9].copy_from_slice(&ring_drops.to_le_bytes());
                body[9..17].copy_from_slice(&reader_drops.to_le_bytes());
                out.write_all(&body)
            }
        }
    }

    /// The next record, `None` at a clean end of stream.
    pub fn read_from(input: &mut impl Read) -> io::Result<Option<Record>> {
        let mut kind = [0u8; 1];
        match input.read_exact(&mut kind) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            r => r?,
        }
        match kind[0] {
            KIND_FRAME => {
                let mut head = [0u8; 20];
                input.read_exact(&mut head)?;
                let u32_at = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().unwrap());
                let cap_len = u32_at(8) as usize;
                if cap_len > SNAPLEN {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("captured length {cap_len} above {SNAPLEN}"),
                    ));
                }
                let mut data = vec![0; cap_len];
                input.read_exact(&mut data)?;
                Ok(Some(Record::Frame(CapturedFrame {
                    side: if head[0] == 1 {
                        Side::Internal
                    } else {
                        Side::External
                    },
                    direction: if head[1] == 1 {
                        Direction::Transmitted
                    } else {
                        Direction::Received
                    },
                    orig_len: u32_at(4),
                    ts_ns: u64::from_le_bytes(head[12..20].try_into().unwrap()),
                    data,
                })))
            }
            KIND_END => {
                let mut body = [0u8; 16];
                input.read_exact(&mut body)?;
                Ok(Some(Record::End {
                    ring_drops: u64::from_le_bytes(body[..8].try_into().unwrap()),
                    reader_drops: u64::from_le_bytes(body[8..].try_into().unwrap()),
                }))
            }
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown capture record kind {other}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let records = [
            Record::Frame(CapturedFrame {
                side: Side::Internal,
                direction: Direction::Transmitted,
                orig_len: 1514,
                ts_ns: 1_764_000_000_123_456_789,
                data: (0..200u8).collect(),
            }),
            Record::Frame(CapturedFrame {
                side: Side::External,
                direction: Direction::Received,
                orig_len: 60,
                ts_ns: 7,
                data: vec![0xff; 60],
            }),
            Record::End {
                ring_drops: 3,
                reader_drops: 4,
            },
        ];
        let mut buf = Vec::new();
        for r in &records {
            r.write_to(&mut buf).unwrap();
        }
        let mut input = &buf[..];
        for r in &records {
            assert_eq!(Record::read_from(&mut input).unwrap().as_ref(), Some(r));
        }
        assert_eq!(Record::read_from(&mut input).unwrap(), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Record::read_from(&mut &[9u8][..]).is_err());
        let mut frame = vec![KIND_FRAME];
        frame.extend_from_slice(&[0; 8]);
        frame.extend_from_slice(&u32::MAX.to_le_bytes());
        frame.extend_from_slice(&[0; 8]);
        assert!(Record::read_from(&mut &frame[..]).is_err());
        assert!(Record::read_from(&mut &[KIND_END, 1, 2][..]).is_err());
    }
}

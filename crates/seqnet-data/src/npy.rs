//! Reads one `.npy` file as a sequence: `[T, C]` (a feature sequence) or
//! `[T, H, W, C]` (an image sequence), of `f32`, `f64` (either byte order)
//! or `u8` values; `u8` values are scaled to `[0, 1]` (divided by 255).
//!
//! The header is checked against the file's size before any data is read,
//! so a corrupt or truncated file is an error, never a huge allocation.
//! Errors are [`Error::Parse`] with the file's path and line 0.

use crate::observation::{FrameShape, Sequence};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::Header;
use ndarray_npy::ReadableElement;
use py_literal::Value as PyValue;
use seqnet_core::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

/// The element type of a `.npy` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyType {
    /// `float32` (`<f4` or `>f4`).
    F32,
    /// `float64` (`<f8` or `>f8`), converted to `f32`.
    F64,
    /// Scaled to `[0, 1]` when read.
    U8,
}

impl NpyType {
    fn size(self) -> usize {
        match self {
            NpyType::F32 => 4,
            NpyType::F64 => 8,
            NpyType::U8 => 1,
        }
    }
}

/// What the header of a `.npy` sequence file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyInfo {
    /// `[T, C]` or `[T, H, W, C]`.
    pub shape: Vec<usize>,
    /// The element type.
    pub dtype: NpyType,
}

impl NpyInfo {
    /// The number of time steps `T`.
    pub fn len(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Whether the sequence has no time step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one time step.
    pub fn frame_shape(&self) -> FrameShape {
        match self.shape[..] {
            [_, h, w, c] => FrameShape::Image {
                height: h,
                width: w,
                channels: c,
            },
            [_, c] => FrameShape::Features(c),
            _ => FrameShape::Features(0),
        }
    }
}

fn parse_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Parse {
        file: path.display().to_string(),
        line: 0,
        message: message.into(),
    }
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Opens `path` and reads its header, checking it describes a sequence whose
/// data fills the rest of the file exactly. Returns the reader positioned at
/// the data, the raw header and the checked info.
fn open(path: &Path) -> Result<(BufReader<File>, Header, NpyInfo)> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let file_len = file.metadata().map_err(|e| io_err(path, e))?.len();
    let mut reader = BufReader::new(file);
    // The header's own length field, checked before ndarray-npy allocates it.
    let mut pre = [0u8; 12];
    let got = read_up_to(&mut reader, &mut pre).map_err(|e| io_err(path, e))?;
    if got < 10 || &pre[..6] != b"\x93NUMPY" {
        return Err(parse_err(
            path,
            "not a .npy file (no \\x93NUMPY magic string)",
        ));
    }
    let header_len = match pre[6] {
        1 => u64::from(u16::from_le_bytes([pre[8], pre[9]])),
        _ => u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]])),
    };
    if header_len > file_len {
        return Err(parse_err(
            path,
            format!("the header claims {header_len} bytes but the file has {file_len}: truncated or corrupt"),
        ));
    }
    reader.rewind().map_err(|e| io_err(path, e))?;
    let header = Header::from_reader(&mut reader)
        .map_err(|e| parse_err(path, format!("bad .npy header: {e}")))?;
    let data_start = reader.stream_position().map_err(|e| io_err(path, e))?;
    let dtype = match &header.type_descriptor {
        PyValue::String(s) => match s.as_str() {
            "<f4" | ">f4" => Some(NpyType::F32),
            "<f8" | ">f8" => Some(NpyType::F64),
            "|u1" | "u1" | "B" => Some(NpyType::U8),
            _ => None,
        },
        _ => None,
    };
    let Some(dtype) = dtype else {
        return Err(parse_err(
            path,
            format!(
                "element type {} is not supported: expected float32, float64 or uint8",
                header.type_descriptor
            ),
        ));
    };
    let shape = header.shape.clone();
    if shape.len() != 2 && shape.len() != 4 {
        return Err(parse_err(
            path,
            format!(
                "shape {shape:?} has {} dimensions: expected [T, C] (a feature sequence) or [T, H, W, C] (an image sequence)",
                shape.len()
            ),
        ));
    }
    if shape[0] == 0 {
        return Err(parse_err(
            path,
            format!("shape {shape:?}: the sequence has no time step"),
        ));
    }
    if shape.contains(&0) {
        return Err(parse_err(
            path,
            format!("shape {shape:?}: a time step has no value"),
        ));
    }
    let bytes = shape
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64));
    let have = file_len - data_start.min(file_len);
    match bytes {
        Some(b) if b == have => {}
        Some(b) => {
            return Err(parse_err(
                path,
                format!(
                    "shape {shape:?} of {dtype:?} needs {b} data bytes, the file has {have}{}",
                    if have < b { ": truncated" } else { "" }
                ),
            ))
        }
        None => return Err(parse_err(path, format!("shape {shape:?} is too large"))),
    }
    Ok((reader, header, NpyInfo { shape, dtype }))
}

/// Reads as many bytes as are there, up to `buf.len()`.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads only the header of a `.npy` sequence file (and checks the file size).
pub fn read_info(path: impl AsRef<Path>) -> Result<NpyInfo> {
    open(path.as_ref()).map(|(_, _, info)| info)
}

/// Reads a `.npy` file as a sequence: `[T, C]` → [`Sequence::Features`],
/// `[T, H, W, C]` → [`Sequence::Images`]. Values must be finite (after
/// conversion to `f32`).
pub fn read_sequence(path: impl AsRef<Path>) -> Result<Sequence> {
    let path = path.as_ref();
    let (reader, header, info) = open(path)?;
    let len: usize = info.shape.iter().product();
    let data_err = |e: ndarray_npy::ReadDataError| parse_err(path, format!("bad data: {e}"));
    let desc = &header.type_descriptor;
    let values: Vec<f32> = match info.dtype {
        NpyType::F32 => f32::read_to_end_exact_vec(reader, desc, len).map_err(data_err)?,
        NpyType::F64 => f64::read_to_end_exact_vec(reader, desc, len)
            .map_err(data_err)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        NpyType::U8 => u8::read_to_end_exact_vec(reader, desc, len)
            .map_err(data_err)?
            .into_iter()
            .map(|v| f32::from(v) / 255.0)
            .collect(),
    };
    if let Some(p) = values.iter().position(|v| !v.is_finite()) {
        return Err(parse_err(
            path,
            format!("value {p} (in memory order) is NaN or infinite as float32"),
        ));
    }
    let shape = IxDyn(&info.shape);
    let array = if header.layout.is_fortran() {
        ArrayD::from_shape_vec(shape.f(), values).map(|a| a.as_standard_layout().into_owned())
    } else {
        ArrayD::from_shape_vec(shape, values)
    }
    .map_err(|e| parse_err(path, format!("shape {:?}: {e}", info.shape)))?;
    let shape_err =
        |e: ndarray::ShapeError| parse_err(path, format!("shape {:?}: {e}", info.shape));
    Ok(match info.shape.len() {
        2 => Sequence::Features(array.into_dimensionality().map_err(shape_err)?),
        _ => Sequence::Images(array.into_dimensionality().map_err(shape_err)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array4};
    use ndarray_npy::write_npy;

    #[test]
    fn reads_each_type_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let a = Array2::from_shape_fn((3, 2), |(t, c)| (t * 2 + c) as f32);
        write_npy(&p, &a).unwrap();
        assert_eq!(read_sequence(&p).unwrap(), Sequence::Features(a.clone()));
        assert_eq!(read_info(&p).unwrap().shape, vec![3, 2]);

        write_npy(&p, &a.mapv(f64::from)).unwrap();
        assert_eq!(read_sequence(&p).unwrap(), Sequence::Features(a.clone()));

        // Fortran order is read in the right order.
        let f = a.t().as_standard_layout().into_owned().reversed_axes();
        assert!(f.t().is_standard_layout());
        write_npy(&p, &f).unwrap();
        assert_eq!(read_sequence(&p).unwrap(), Sequence::Features(a.clone()));

        let img = Array4::from_shape_fn((2, 3, 4, 1), |(t, h, w, _)| (t * 100 + h * 10 + w) as u8);
        write_npy(&p, &img).unwrap();
        match read_sequence(&p).unwrap() {
            Sequence::Images(x) => {
                assert_eq!(x.shape(), &[2, 3, 4, 1]);
                assert!((x[[1, 2, 3, 0]] - 123.0 / 255.0).abs() < 1e-6);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let check = |needle: &str| {
            let e = read_sequence(&p).unwrap_err().to_string();
            assert!(
                e.contains("a.npy") && e.contains(needle),
                "'{e}' lacks '{needle}'"
            );
        };
        std::fs::write(&p, b"").unwrap();
        check("not a .npy file");
        std::fs::write(&p, b"hello world, not npy").unwrap();
        check("not a .npy file");
        write_npy(&p, &Array2::<f32>::zeros((4, 3))).unwrap();
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 5]).unwrap();
        check("truncated");
        let mut more = full.clone();
        more.extend([0u8; 4]);
        std::fs::write(&p, &more).unwrap();
        check("needs 48 data bytes, the file has 52");
        std::fs::write(&p, &full[..30]).unwrap();
        check("header");
        // A header length beyond the file.
        let mut big = full.clone();
        big[8] = 0xff;
        big[9] = 0xff;
        std::fs::write(&p, &big).unwrap();
        check("header");
        write_npy(&p, &ndarray::Array1::<f32>::zeros(4)).unwrap();
        check("expected [T, C]");
        write_npy(&p, &Array2::<i32>::zeros((4, 3))).unwrap();
        check("not supported");
        write_npy(&p, &Array2::<f32>::zeros((0, 3))).unwrap();
        check("no time step");
        write_npy(&p, &Array2::<f32>::zeros((2, 0))).unwrap();
        check("no value");
        write_npy(&p, &Array2::<f32>::from_elem((2, 2), f32::NAN)).unwrap();
        check("NaN");
        write_npy(&p, &Array2::<f64>::from_elem((2, 2), 1e300)).unwrap();
        check("NaN or infinite");
        let e = read_sequence(dir.path().join("missing.npy")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }

    #[test]
    fn never_panics_on_corrupt_bytes() {
        use proptest::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.npy");
        write_npy(&p, &Array2::<f32>::zeros((2, 3))).unwrap();
        let good = std::fs::read(&p).unwrap();
        proptest!(ProptestConfig::with_cases(200), |(pos in 0usize..200, byte in any::<u8>(), cut in 0usize..200)| {
            let mut b = good.clone();
            let i = pos % b.len();
            b[i] = byte;
            b.truncate(b.len() - cut.min(b.len()) / 4);
            std::fs::write(&p, &b).unwrap();
            let _ = read_sequence(&p);
        });
    }
}

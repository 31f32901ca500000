//! Reads `.npy` files: one sequence per file — `[T, C]` (a feature
//! sequence) or `[T, H, W, C]` (an image sequence), of `f32`, `f64` (either
//! byte order) or `u8` values, `u8` values scaled to `[0, 1]` (divided by
//! 255) — and the raw values that [`crate::targets`] reads per-step
//! targets from (`int64`/`int32` class indices, `float32`/`float64` responses).
//!
//! The header is checked against the file's size before any data is read,
//! so a corrupt or truncated file is an error, never a huge allocation.
//! Errors are [`Error::Npy`] naming the file, or [`Error::Io`].

use crate::error::{Error, Result};
use crate::observation::{FrameShape, Sequence};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::Header;
use ndarray_npy::ReadableElement;
use py_literal::Value as PyValue;
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
    /// `uint8`; sequences scale it to `[0, 1]` when read.
    U8,
    /// `int32` (`<i4` or `>i4`): class indices of targets.
    I32,
    /// `int64` (`<i8` or `>i8`): class indices of targets.
    I64,
}

impl NpyType {
    fn size(self) -> usize {
        match self {
            NpyType::F32 | NpyType::I32 => 4,
            NpyType::F64 | NpyType::I64 => 8,
            NpyType::U8 => 1,
        }
    }

    /// NumPy's name of the type (`float32`, …).
    pub fn numpy_name(self) -> &'static str {
        match self {
            NpyType::F32 => "float32",
            NpyType::F64 => "float64",
            NpyType::U8 => "uint8",
            NpyType::I32 => "int32",
            NpyType::I64 => "int64",
        }
    }

    /// The type of a header's descriptor (`<f4`, …), `None` when unsupported.
    fn of(descriptor: &PyValue) -> Option<NpyType> {
        let PyValue::String(s) = descriptor else {
            return None;
        };
        Some(match s.as_str() {
            "<f4" | ">f4" => NpyType::F32,
            "<f8" | ">f8" => NpyType::F64,
            "|u1" | "u1" | "B" => NpyType::U8,
            "<i4" | ">i4" => NpyType::I32,
            "<i8" | ">i8" => NpyType::I64,
            _ => return None,
        })
    }
}

/// What the header of a `.npy` file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyInfo {
    /// The shape: `[T, C]` or `[T, H, W, C]` for sequences, `[T]` or
    /// `[T, R]` for per-step targets.
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

    /// The shape of one time step of a sequence.
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

/// An open `.npy` file: its reader positioned at the data, its header and
/// the checked info.
pub(crate) struct NpyFile {
    reader: BufReader<File>,
    header: Header,
    /// What the header says, checked against the file size.
    pub info: NpyInfo,
}

impl NpyFile {
    /// Opens `path` and reads its header, checking that the element type is
    /// supported and that the data fills the rest of the file exactly.
    pub fn open(path: &Path) -> Result<NpyFile> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut reader = BufReader::new(file);
        // The header's own length field, checked before ndarray-npy allocates it.
        let mut pre = [0u8; 12];
        let got = read_up_to(&mut reader, &mut pre).map_err(|e| Error::io(path, e))?;
        if got < 10 || &pre[..6] != b"\x93NUMPY" {
            return Err(Error::npy(
                path,
                "not a .npy file (no \\x93NUMPY magic string)",
            ));
        }
        let header_len = match pre[6] {
            1 => u64::from(u16::from_le_bytes([pre[8], pre[9]])),
            _ => u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]])),
        };
        if header_len > file_len {
            return Err(Error::npy(
                path,
                format!("the header claims {header_len} bytes but the file has {file_len}: truncated or corrupt"),
            ));
        }
        reader.rewind().map_err(|e| Error::io(path, e))?;
        let header = Header::from_reader(&mut reader)
            .map_err(|e| Error::npy(path, format!("bad .npy header: {e}")))?;
        let data_start = reader.stream_position().map_err(|e| Error::io(path, e))?;
        let Some(dtype) = NpyType::of(&header.type_descriptor) else {
            return Err(Error::npy(
                path,
                format!(
                    "element type {} is not supported: expected float32 or float64 (sequences, responses), uint8 (sequences), int64 or int32 (class indices)",
                    header.type_descriptor
                ),
            ));
        };
        let shape = header.shape.clone();
        let bytes = shape
            .iter()
            .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64));
        let have = file_len - data_start.min(file_len);
        match bytes {
            Some(b) if b == have => {}
            Some(b) => {
                return Err(Error::npy(
                    path,
                    format!(
                        "shape {shape:?} of {dtype:?} needs {b} data bytes, the file has {have}{}",
                        if have < b { ": truncated" } else { "" }
                    ),
                ))
            }
            None => return Err(Error::npy(path, format!("shape {shape:?} is too large"))),
        }
        Ok(NpyFile {
            reader,
            header,
            info: NpyInfo { shape, dtype },
        })
    }

    /// All values as `f32` in row-major (C) order of the shape; `u8` values
    /// are divided by 255 when `scale_u8`. Integer files are an error.
    pub fn values_f32(self, path: &Path, scale_u8: bool) -> Result<Vec<f32>> {
        let len: usize = self.info.shape.iter().product();
        let data_err = |e: ndarray_npy::ReadDataError| Error::npy(path, format!("bad data: {e}"));
        let desc = &self.header.type_descriptor;
        let reader = self.reader;
        let values: Vec<f32> = match self.info.dtype {
            NpyType::F32 => f32::read_to_end_exact_vec(reader, desc, len).map_err(data_err)?,
            NpyType::F64 => f64::read_to_end_exact_vec(reader, desc, len)
                .map_err(data_err)?
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            NpyType::U8 => u8::read_to_end_exact_vec(reader, desc, len)
                .map_err(data_err)?
                .into_iter()
                .map(|v| f32::from(v) / if scale_u8 { 255.0 } else { 1.0 })
                .collect(),
            NpyType::I32 | NpyType::I64 => {
                return Err(Error::npy(
                    path,
                    format!(
                        "element type {} where floating-point values are expected",
                        self.info.dtype.numpy_name()
                    ),
                ))
            }
        };
        c_order(
            values,
            &self.info.shape,
            self.header.layout.is_fortran(),
            path,
        )
    }

    /// All values of an `int64` or `int32` file in row-major (C) order.
    pub fn values_i64(self, path: &Path) -> Result<Vec<i64>> {
        let len: usize = self.info.shape.iter().product();
        let data_err = |e: ndarray_npy::ReadDataError| Error::npy(path, format!("bad data: {e}"));
        let desc = &self.header.type_descriptor;
        let values = match self.info.dtype {
            NpyType::I64 => i64::read_to_end_exact_vec(self.reader, desc, len).map_err(data_err)?,
            NpyType::I32 => i32::read_to_end_exact_vec(self.reader, desc, len)
                .map_err(data_err)?
                .into_iter()
                .map(i64::from)
                .collect(),
            other => {
                return Err(Error::npy(
                    path,
                    format!(
                        "element type {} where integers are expected",
                        other.numpy_name()
                    ),
                ))
            }
        };
        c_order(
            values,
            &self.info.shape,
            self.header.layout.is_fortran(),
            path,
        )
    }
}

/// `values` of `shape` in row-major order (they are in column-major order
/// when `fortran`).
fn c_order<T: Clone>(
    values: Vec<T>,
    shape: &[usize],
    fortran: bool,
    path: &Path,
) -> Result<Vec<T>> {
    if !fortran || shape.len() < 2 {
        return Ok(values);
    }
    let a = ArrayD::from_shape_vec(IxDyn(shape).f(), values)
        .map_err(|e| Error::npy(path, format!("shape {shape:?}: {e}")))?;
    Ok(a.as_standard_layout().iter().cloned().collect())
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

/// Opens a sequence file: checks the element type (float32, float64 or
/// uint8) and the shape (`[T, C]` or `[T, H, W, C]`, no zero size).
fn open_sequence(path: &Path) -> Result<NpyFile> {
    let file = NpyFile::open(path)?;
    let NpyInfo { shape, dtype } = &file.info;
    if matches!(dtype, NpyType::I32 | NpyType::I64) {
        return Err(Error::npy(
            path,
            format!(
                "element type {} is not supported for a sequence: expected float32, float64 or uint8",
                dtype.numpy_name()
            ),
        ));
    }
    if shape.len() != 2 && shape.len() != 4 {
        return Err(Error::npy(
            path,
            format!(
                "shape {shape:?} has {} dimensions: expected [T, C] (a feature sequence) or [T, H, W, C] (an image sequence)",
                shape.len()
            ),
        ));
    }
    if shape[0] == 0 {
        return Err(Error::npy(
            path,
            format!("shape {shape:?}: the sequence has no time step"),
        ));
    }
    if shape.contains(&0) {
        return Err(Error::npy(
            path,
            format!("shape {shape:?}: a time step has no value"),
        ));
    }
    Ok(file)
}

/// Reads only the header of a `.npy` sequence file (and checks the file size).
pub fn read_info(path: impl AsRef<Path>) -> Result<NpyInfo> {
    open_sequence(path.as_ref()).map(|f| f.info)
}

/// Reads a `.npy` file as a sequence: `[T, C]` → [`Sequence::Features`],
/// `[T, H, W, C]` → [`Sequence::Images`]. Values must be finite (after
/// conversion to `f32`).
pub fn read_sequence(path: impl AsRef<Path>) -> Result<Sequence> {
    let path = path.as_ref();
    let file = open_sequence(path)?;
    let shape = file.info.shape.clone();
    let values = file.values_f32(path, true)?;
    if let Some(p) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::npy(
            path,
            format!("value {p} (in row-major order) is NaN or infinite as float32"),
        ));
    }
    let shape_err = |e: ndarray::ShapeError| Error::npy(path, format!("shape {shape:?}: {e}"));
    let array = ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(shape_err)?;
    Ok(match shape.len() {
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

//! Reading a safetensors file one tensor at a time.
//!
//! `VarBuilder::from_mmaped_safetensors` needs `mmap`, which WASI lacks, and
//! `VarBuilder::from_buffered_safetensors` keeps the whole file in memory
//! next to the tensors made from it. Reading each tensor straight into the
//! `Vec<f32>` that becomes its storage keeps the peak near the size of the
//! weights.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::{Device, Tensor};
use safetensors::tensor::{Dtype, Metadata};

use crate::Error;

/// The largest header this reader accepts: 1 MiB, where the header of
/// all-MiniLM-L6-v2 is 11 KB. The safetensors crate 0.8 accepts up to
/// 100 MB.
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Reads the `F32` tensors of the safetensors file at `path`, by name.
///
/// Tensors of other types are skipped: in a BERT checkpoint that is the
/// `I64` buffer `embeddings.position_ids`, which candle computes itself.
///
/// # Errors
///
/// Returns [`Error::Read`] when the file cannot be read, and
/// [`Error::InvalidModel`] when its header is not valid safetensors or its
/// length does not match the header.
pub(crate) fn read_f32_tensors(path: &Path) -> Result<HashMap<String, Tensor>, Error> {
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let invalid = |message: String| Error::InvalidModel {
        path: path.to_owned(),
        message,
    };

    let mut file = File::open(path).map_err(read_error)?;
    let file_len = file.metadata().map_err(read_error)?.len();
    let mut header_len = [0u8; 8];
    file.read_exact(&mut header_len).map_err(read_error)?;
    let header_len = u64::from_le_bytes(header_len);
    if header_len > MAX_HEADER_BYTES || header_len + 8 > file_len {
        return Err(invalid(format!(
            "the header length {header_len} does not fit a file of {file_len} bytes; \
             the file is not safetensors or is truncated"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(read_error)?;
    // Deserializing `Metadata` also checks that the tensors' byte ranges are
    // contiguous and match their shapes.
    let metadata: Metadata = serde_json::from_slice(&header)
        .map_err(|error| invalid(format!("invalid safetensors header: {error}")))?;
    let data_start = 8 + header_len;
    let expected_len = data_start + metadata.data_len() as u64;
    if expected_len != file_len {
        return Err(invalid(format!(
            "the header describes {expected_len} bytes, but the file has {file_len}; \
             the file is truncated or damaged"
        )));
    }

    let mut tensors = HashMap::new();
    for name in metadata.offset_keys() {
        let info = metadata
            .info(&name)
            .expect("offset_keys lists names of the metadata");
        if info.dtype != Dtype::F32 {
            continue;
        }
        let (start, end) = info.data_offsets;
        let mut values = vec![0f32; (end - start) / 4];
        file.seek(SeekFrom::Start(data_start + start as u64))
            .map_err(read_error)?;
        file.read_exact(bytemuck::cast_slice_mut(&mut values))
            .map_err(read_error)?;
        // The format stores little-endian values.
        if cfg!(target_endian = "big") {
            for value in &mut values {
                *value = f32::from_bits(u32::from_le(value.to_bits()));
            }
        }
        let tensor = Tensor::from_vec(values, info.shape.as_slice(), &Device::Cpu)
            .map_err(|error| invalid(format!("tensor `{name}`: {error}")))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

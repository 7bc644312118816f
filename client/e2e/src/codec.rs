//! A tiny fixed-layout binary codec for secret state. Output goes straight
//! into a zeroizing buffer; nothing secret passes through prost structs.

use zeroize::Zeroizing;

/// Why serialised state could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The bytes end before the state does.
    #[error("serialised state is truncated")]
    Truncated,
    /// The bytes go on after the state ends.
    #[error("serialised state has trailing bytes")]
    TrailingBytes,
    /// The leading tag or version byte is not one this version understands.
    #[error("serialised state has an unknown kind or version")]
    BadVersion,
    /// A key, length or flag inside the state is invalid.
    #[error("serialised state holds an invalid value")]
    Invalid,
}

pub(crate) struct Writer(Zeroizing<Vec<u8>>);

impl Writer {
    pub(crate) fn new(capacity: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(capacity)))
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    pub(crate) fn opt32(&mut self, v: &Option<[u8; 32]>) {
        match v {
            Some(k) => {
                self.u8(1);
                self.bytes(k);
            }
            None => self.u8(0),
        }
    }
    pub(crate) fn finish(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self(b)
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], StateError> {
        if self.0.len() < n {
            return Err(StateError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, StateError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, StateError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, StateError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    pub(crate) fn arr<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(crate) fn opt32(&mut self) -> Result<Option<[u8; 32]>, StateError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.arr()?)),
            _ => Err(StateError::Invalid),
        }
    }
    pub(crate) fn end(self) -> Result<(), StateError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(StateError::TrailingBytes)
        }
    }
}

//! Changing what unlocks a [`Vault`]: the main passphrase, its Argon2
//! parameters and the duress slot. Every change rewrites the key file
//! atomically and touches only its own slot (see the [module docs](super)
//! for why slot 1 is never re-wrapped by a passphrase change). It must never
//! touch the database: the data key does not change.

use super::keyfile::{KeyFile, MAX_DECOY_LEN, ParseError, Slot, SlotContent};
use super::{KEY_TMP_NAME, KdfParams, PassphraseError, Vault, fsutil, key_path, read_key_file};

impl Vault {
    fn read_parsed_key_file(&self) -> Result<KeyFile, PassphraseError> {
        let bytes =
            read_key_file(&self.dir)?.ok_or(PassphraseError::Corrupt("key file missing"))?;
        KeyFile::parse(&bytes).map_err(|e| match e {
            ParseError::Corrupt(why) => PassphraseError::Corrupt(why),
            ParseError::Version(_) => PassphraseError::Corrupt("unsupported key file version"),
        })
    }

    fn write_key_file(&self, key_file: &KeyFile) -> Result<(), PassphraseError> {
        fsutil::write_atomic(
            &self.dir,
            &self.dir.join(KEY_TMP_NAME),
            &key_path(&self.dir),
            &key_file.to_bytes(),
        )?;
        Ok(())
    }

    /// Re-wraps the data key under a `new` passphrase (and optionally new Argon2
    /// parameters; `None` keeps the current ones), replacing the key file
    /// atomically. The duress slot is left as it is (see the module docs).
    ///
    /// # Errors
    /// [`PassphraseError::EmptyPassphrase`], [`PassphraseError::SameAsDuress`] if
    /// `new` is the duress passphrase, [`PassphraseError::InvalidParams`], or an I/O
    /// or key-file error; on error the key file is unchanged.
    pub fn change_passphrase(
        &self,
        new: &[u8],
        params: Option<KdfParams>,
    ) -> Result<(), PassphraseError> {
        if new.is_empty() {
            return Err(PassphraseError::EmptyPassphrase);
        }
        let _guard = self
            .key_file_mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key_file = self.read_parsed_key_file()?;
        let params = params.unwrap_or(key_file.slots[0].params());
        params.validate().map_err(PassphraseError::InvalidParams)?;
        if let Some(SlotContent::Duress(..)) = key_file.slots[1]
            .try_open(1, new)
            .map_err(PassphraseError::Corrupt)?
        {
            return Err(PassphraseError::SameAsDuress);
        }
        key_file.slots[0] =
            Slot::seal_main(new, params, &self.data_key).map_err(PassphraseError::InvalidParams)?;
        self.write_key_file(&key_file)
    }

    /// Sets (or replaces) the duress passphrase and its decoy blob (at most
    /// [`MAX_DECOY_LEN`] bytes, e.g. the display name and relay address for the
    /// fresh profile the caller will create after a duress unlock).
    ///
    /// # Errors
    /// [`PassphraseError::EmptyPassphrase`], [`PassphraseError::DuressSameAsMain`],
    /// [`PassphraseError::DecoyTooLarge`], or an I/O or key-file error; on error the
    /// key file is unchanged.
    pub fn set_duress(&self, duress: &[u8], decoy: &[u8]) -> Result<(), PassphraseError> {
        if duress.is_empty() {
            return Err(PassphraseError::EmptyPassphrase);
        }
        if decoy.len() > MAX_DECOY_LEN {
            return Err(PassphraseError::DecoyTooLarge { max: MAX_DECOY_LEN });
        }
        let _guard = self
            .key_file_mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key_file = self.read_parsed_key_file()?;
        if let Some(SlotContent::Main(_)) = key_file.slots[0]
            .try_open(0, duress)
            .map_err(PassphraseError::Corrupt)?
        {
            return Err(PassphraseError::DuressSameAsMain);
        }
        let params = key_file.slots[0].params();
        key_file.slots[1] =
            Slot::seal_duress(duress, params, decoy).map_err(PassphraseError::InvalidParams)?;
        self.write_key_file(&key_file)
    }

    /// The Argon2 parameters of the main passphrase.
    ///
    /// # Errors
    /// An I/O or key-file error.
    pub fn kdf_params(&self) -> Result<KdfParams, PassphraseError> {
        Ok(self.read_parsed_key_file()?.slots[0].params())
    }

    /// Removes the duress passphrase (slot 1 becomes fresh random bytes, which look
    /// exactly like a set duress slot).
    ///
    /// # Errors
    /// An I/O or key-file error; on error the key file is unchanged.
    pub fn clear_duress(&self) -> Result<(), PassphraseError> {
        let _guard = self
            .key_file_mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key_file = self.read_parsed_key_file()?;
        key_file.slots[1] = Slot::random(key_file.slots[0].params());
        self.write_key_file(&key_file)
    }
}

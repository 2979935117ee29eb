// Package importer turns models signed elsewhere into regular visionserve
// packages, re-signed with the repository's key and published into the
// repository by rename:
//
//   - the simple zip layout vendors ship: model.onnx (or one
//     *.traineddata), config.json, checksum.sha256 (sha256sum output) and
//     signature.sig, an RSA-PSS/SHA-256 signature over the model file
//     (`openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sign`), checked
//     with a trusted RSA public key;
//   - a directory (or single file) signed with OpenSSF model signing and no
//     visionserve manifest, checked with the signer's key or certificate
//     chain (package signing), optionally ignoring unsigned files.
//
// What it owns, in order: the archive's structure and bounds (entry count,
// sizes, compression ratio, names: zip-slip and zip bombs are refused
// before any byte is decompressed), the checksums and the signature (both
// read from the archive, before anything is written), then extraction into
// a staging directory inside the repository (a dot name the repository
// never loads), where every byte is hashed again and compared with what
// was verified, then the manifest with the import's provenance, the
// repository's signature, an optional check against the serving trust,
// and the rename that publishes the version.
//
// It never publishes a version whose source it has not verified, never
// writes outside the staging directory before that, and never overwrites
// an existing version. Every refusal is an error whose Reason (ReasonOf)
// names the cause on one line. The CLI (`visionserve model import`) and
// the server's drop folder (Watcher) call the same Importer.Import.
package importer

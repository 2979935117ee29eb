// Package manifest owns manifest.json, the file that describes one model
// version directory (<repo>/<model-name>/<version>/): its name, version,
// kind, free-form engine options and the size and SHA-256 of every file.
//
// The package builds manifests (Pack), parses them strictly (Parse, Load)
// and checks a directory against one (VerifyFiles, Manifest.Verify,
// Manifest.VerifyDigests). A directory matches its manifest only if every
// listed file is present with the listed size and digest and no other file
// exists, apart from manifest.json itself, model.sig and the top-level git
// entries that model signing ignores (.git, .gitattributes, .github,
// .gitignore). Files are hashed as streams, so memory stays bounded whatever
// the model size.
//
// Every failure is a *modelrepo.Error with a bounded modelrepo.Reason.
// This package never checks signatures (package signing does) and never
// decides whether a version is served.
package manifest

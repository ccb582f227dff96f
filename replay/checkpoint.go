package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ledgerworks/ledger/projections"
)

// CheckpointFile is the file a checkpoint directory carries beside Pebble's
// own files: its applied sequence and digest, so that a rebuild starting
// from it can prove the copy is the state it claims to be. Pebble ignores
// files it does not know.
const CheckpointFile = "LEDGER-CHECKPOINT.json"

// CheckpointInfo describes a checkpoint.
type CheckpointInfo struct {
	Applied uint64 `json:"applied_seq"`
	Digest  string `json:"digest"`
	// Created is when the checkpoint was taken (wall clock; informative).
	Created time.Time `json:"created"`
}

// Checkpoint writes a Pebble checkpoint of a store into dir (which must not
// exist), with the WAL flushed first so that every batch committed without
// fsync is in it. The checkpoint holds the applied sequence in the same
// consistent state as everything else, and is then digested and described in
// dir/LEDGER-CHECKPOINT.json. A projector may keep writing meanwhile.
func Checkpoint(s *projections.Store, dir string, o projections.StoreOptions) (*CheckpointInfo, error) {
	if err := s.DB().Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return nil, fmt.Errorf("checkpoint into %s: %w", dir, err)
	}
	cs, err := projections.OpenStore(dir, o)
	if err != nil {
		return nil, err
	}
	d, err := DigestStore(cs)
	if cerr := cs.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	info := &CheckpointInfo{Applied: d.Applied, Digest: d.Sum, Created: time.Now().UTC()}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, CheckpointFile), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return info, nil
}

// ReadCheckpointInfo reads the description of a checkpoint.
func ReadCheckpointInfo(dir string) (*CheckpointInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, CheckpointFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var info CheckpointInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", dir, CheckpointFile, err)
	}
	return &info, nil
}

// ErrCheckpointMismatch means a checkpoint's content is not the state its
// description claims.
var ErrCheckpointMismatch = errors.New("checkpoint does not match its recorded digest")

// RestoreCheckpoint copies a checkpoint into dir (which must not exist),
// leaving the checkpoint untouched, and verifies that the copy has the
// applied sequence and digest recorded when the checkpoint was taken.
func RestoreCheckpoint(ckpt, dir string, o projections.StoreOptions) (*CheckpointInfo, error) {
	info, err := ReadCheckpointInfo(ckpt)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("restore checkpoint: %s already exists", dir)
	}
	if err := copyDir(ckpt, dir); err != nil {
		return nil, fmt.Errorf("restore checkpoint %s into %s: %w", ckpt, dir, err)
	}
	s, err := projections.OpenStore(dir, o)
	if err != nil {
		return nil, err
	}
	d, err := DigestStore(s)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if d.Applied != info.Applied || d.Sum != info.Digest {
		return nil, fmt.Errorf("%w: %s holds applied_seq %d digest %s, recorded %d %s", ErrCheckpointMismatch, ckpt, d.Applied, d.Sum, info.Applied, info.Digest)
	}
	return info, nil
}

// copyDir copies the regular files of a Pebble directory (it has no
// subdirectories), except its lock and the checkpoint description.
func copyDir(from, to string) error {
	ents, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "LOCK" || e.Name() == CheckpointFile {
			continue
		}
		if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

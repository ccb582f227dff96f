package replay

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/ledgerworks/ledger/projections"
)

// FoldOptions bound a fold of the stream into a store.
type FoldOptions struct {
	// Through is the last sequence to fold (0: the stream's last when the
	// fold starts).
	Through uint64
	// Until, when set, stops before the first message the stream stored
	// after it (point in time by stream time).
	Until time.Time
	// Progress, when set, is told where the fold stands.
	Progress *Progress
	// OnMessages, when set, sees every batch of messages before it is
	// folded (to hash or scan them in the same pass).
	OnMessages func([]Message)
}

// FoldResult says what a fold did.
type FoldResult struct {
	From     uint64        `json:"from_seq"`    // first sequence asked for (the store's applied + 1)
	Through  uint64        `json:"through_seq"` // last sequence asked for
	Applied  uint64        `json:"applied_seq"` // the store's applied sequence afterwards
	Messages int64         `json:"messages"`    // messages folded
	Elapsed  time.Duration `json:"elapsed_ns"`
	// LastTime is the stream timestamp of the last message folded (zero
	// when none was).
	LastTime time.Time `json:"last_time"`
}

// Fold folds the stream into a projector's store, from right after its
// applied sequence, with projections.Projector.Apply: the same code, the
// same batches-with-applied-sequence commits as a live projector. It can be
// interrupted (ctx) at any point and started again: it resumes from what the
// store holds.
func Fold(ctx context.Context, src Source, p *projections.Projector, o FoldOptions) (FoldResult, error) {
	start := time.Now() // for the progress rate only
	res := FoldResult{From: p.Applied() + 1, Through: o.Through}
	if res.Through == 0 {
		last, err := src.Last(ctx)
		if err != nil {
			return res, err
		}
		res.Through = last
	}
	if o.Progress != nil {
		o.Progress.Start(res.From, res.Through)
		defer o.Progress.Finish()
	}
	if res.From <= res.Through {
		_, err := src.Read(ctx, Range{From: res.From, To: res.Through}, func(batch []Message) error {
			stop := false
			if !o.Until.IsZero() {
				for i := range batch {
					if batch[i].Time.After(o.Until) {
						batch, stop = batch[:i], true
						break
					}
				}
			}
			if len(batch) == 0 {
				return ErrStop
			}
			if o.OnMessages != nil {
				o.OnMessages(batch)
			}
			msgs := make([]projections.Message, len(batch))
			for i := range batch {
				msgs[i] = batch[i].Message
			}
			if err := p.Apply(msgs); err != nil {
				return err
			}
			res.Messages += int64(len(batch))
			res.LastTime = batch[len(batch)-1].Time
			if o.Progress != nil {
				o.Progress.Update(batch[len(batch)-1].Seq, int64(len(batch)))
			}
			if stop {
				return ErrStop
			}
			return nil
		})
		if err != nil {
			res.Applied = p.Applied()
			res.Elapsed = time.Since(start)
			return res, err
		}
	}
	res.Applied = p.Applied()
	res.Elapsed = time.Since(start)
	return res, nil
}

// RebuildOptions configure a rebuild.
type RebuildOptions struct {
	// Dir is the Pebble directory of the projection. A new directory is
	// folded from sequence 1 (or from Checkpoint); an existing one resumes
	// from its applied sequence.
	Dir string
	// Checkpoint, when set, is a checkpoint (see Checkpoint) to start from
	// instead of sequence 1. Dir must not exist yet. Its digest is verified
	// before anything is folded on top.
	Checkpoint string
	Store      projections.StoreOptions
	Fold       FoldOptions
}

// RebuildResult is a fold's result and the digest of the projection after it.
type RebuildResult struct {
	FoldResult
	Resumed    bool    `json:"resumed"` // the directory already held a projection
	Checkpoint uint64  `json:"checkpoint_seq,omitempty"`
	Digest     *Digest `json:"digest"`
}

// Rebuild folds the stream into the projection in o.Dir and returns its
// digest.
func Rebuild(ctx context.Context, src Source, o RebuildOptions) (*RebuildResult, error) {
	if o.Dir == "" {
		return nil, errors.New("rebuild: a projection directory is required")
	}
	res := &RebuildResult{}
	if o.Checkpoint != "" {
		info, err := RestoreCheckpoint(o.Checkpoint, o.Dir, o.Store)
		if err != nil {
			return nil, err
		}
		res.Checkpoint = info.Applied
	} else if _, err := os.Stat(o.Dir); err == nil {
		res.Resumed = true
	}
	store, err := projections.OpenStore(o.Dir, o.Store)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	p, err := projections.NewProjector(nil, store, projections.ProjectorOptions{})
	if err != nil {
		return nil, err
	}
	if res.Resumed && p.Applied() == 0 {
		res.Resumed = false
	}
	fr, err := Fold(ctx, src, p, o.Fold)
	res.FoldResult = fr
	if err != nil {
		return res, err
	}
	if res.Digest, err = DigestStore(store); err != nil {
		return res, err
	}
	return res, nil
}

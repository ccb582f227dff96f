package events

import (
	"archive/zip"
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"sync"
	"time"
)

// The ledger carries its own copy of the IANA time zone database (release
// 2025c, as compiled by Go: tzdata/zoneinfo.zip) and never reads the host's.
// A calendar window's buckets depend on the zone's rules, so two machines
// with different zone files would fold the same stream into different
// counters, and an auditor's replay would disagree with the live ledger.
// Updating the file is a change of the ledger's behaviour, made on purpose.
//
//go:embed tzdata/zoneinfo.zip
var zoneinfo []byte

// ZoneDataVersion names the zone database the ledger uses.
const ZoneDataVersion = "2025c"

var (
	zonesOnce  sync.Once
	zoneFiles  map[string]*zip.File
	zonesError error
	locations  sync.Map // name -> *time.Location; only names the database knows: bounded
)

// LoadZone returns the time zone of an IANA name ("Europe/Berlin") from the
// ledger's own zone database. "" and "UTC" are UTC.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if loc, ok := locations.Load(name); ok {
		return loc.(*time.Location), nil
	}
	zonesOnce.Do(func() {
		r, err := zip.NewReader(bytes.NewReader(zoneinfo), int64(len(zoneinfo)))
		if err != nil {
			zonesError = fmt.Errorf("the embedded time zone database: %w", err)
			return
		}
		zoneFiles = make(map[string]*zip.File, len(r.File))
		for _, f := range r.File {
			zoneFiles[f.Name] = f
		}
	})
	if zonesError != nil {
		return nil, zonesError
	}
	f, ok := zoneFiles[name]
	if !ok {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocationFromTZData(name, data)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	locations.Store(name, loc)
	return loc, nil
}

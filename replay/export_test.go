package replay

// CopyCheckpointForTest copies a checkpoint with its description.
func CopyCheckpointForTest(from, to string) error {
	if err := copyDir(from, to); err != nil {
		return err
	}
	return copyFile(from+"/"+CheckpointFile, to+"/"+CheckpointFile)
}

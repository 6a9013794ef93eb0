"""What a run leaves in its workdir and how it is kept: the workdir itself (name, checks, lock),
checkpoints and their checksums, the metrics log, pictures, the stall watch and the compile
cache."""

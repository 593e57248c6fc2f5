/* file.h: reading a whole file, writing one atomically, mkdir -p, and where
 * the project's data/ folder is (file_).  The bottom layer: every folder may
 * use it.  Errors are returned with a message that names the path; nothing is
 * printed, and nothing reads the environment (the front end hands in the data
 * folder). */
#ifndef BASE_FILE_H
#define BASE_FILE_H
#include <stddef.h>
#include <stdio.h>

/* Reads the whole file at path into a malloc'd buffer (len + 1 bytes: the
 * contents, then a NUL; the contents may hold NULs of their own, *len says how
 * many bytes there are).  max > 0 refuses a file of more than max bytes.
 * Returns the buffer (free() it), or NULL with err: "PATH: No such file or
 * directory", "PATH: larger than MAX bytes", "PATH: out of memory",
 * "PATH: read error: ...".  len may be NULL. */
char *file_read_all(const char *path, size_t max, size_t *len, char *err, size_t errlen);
/* The same from an open stream (stdin, a pipe), read to its end; name is used
 * in messages.  The stream is not closed. */
char *file_read_stream(FILE *f, const char *name, size_t max, size_t *len, char *err, size_t errlen);
/* Writes len bytes of data to path so that a reader sees the old file or the
 * new one, never a part: into path.tmp.PID beside it, fsync, then rename over
 * path.  A path that is a device or a pipe (/dev/stdout, a FIFO) is written
 * in place instead.  0, or -1 with err ("PATH.tmp.PID: No space left on
 * device"; the temporary removed). */
int   file_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);
/* Removes the temporary of a file_write_atomic in progress, if any: for a
 * front end's SIGINT/SIGTERM handler (async-signal-safe), so that a killed
 * command leaves no path.tmp.PID behind. */
void  file_atomic_cleanup(void);
/* The project's data folder (DIR), for paths written from the repository
 * root as the libraries' defaults and the README's examples are
 * ("data/models/opt-13b.json"): such a path that does not exist from the
 * current directory is read as DIR/models/opt-13b.json.  The front end sets
 * DIR (PAGESIM_DATA, --data-dir, or the data/ beside the executable); NULL or
 * "" unsets it.  Set it before threads start. */
void  file_set_data_dir(const char *dir);
/* The data folder set (NULL when none). */
const char *file_data_dir(void);
/* The path to open for path: path itself, or (a "data/..." path absent from
 * the current directory, present in the data folder) DIR/... written into
 * buf.  file_read_all opens its path through this. */
const char *file_data_path(const char *path, char *buf, size_t n);
/* mkdir -p: creates path and the directories above it (mode 0755).  Returns 0,
 * or -1 with errno set (the path is too long: ENAMETOOLONG). */
int   file_mkdirs(const char *path);
/* Creates the directories above the file path (its parent, mkdir -p).  0 / -1. */
int   file_mkparent(const char *path);
#endif

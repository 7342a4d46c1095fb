/*
 * bench-ref: a minimal FUSE daemon in C on libfuse's low-level API that
 * passes every request through to a directory (a tmpfs in scripts/bench).
 * It is the bench's reference for what one FUSE round trip costs when the
 * daemon does almost nothing; it is never part of spoolfs's build.
 *
 *   bench-ref [-s] [-t SECONDS] SOURCE MOUNTPOINT
 *
 * -s serves requests on one thread (fuse_session_loop) instead of libfuse's
 * thread pool; -t sets the entry and attribute timeouts (default 1 s, as
 * libfuse's passthrough_ll). It stays in the foreground; unmount it to stop
 * it. Each inode is an O_PATH descriptor of the source's file, as in
 * passthrough_ll; xattrs are not implemented (ENOSYS), so the kernel stops
 * asking after the first GETXATTR. Opens keep the page cache
 * (FOPEN_KEEP_CACHE, passthrough_ll's cache=always), as spoolfs's do: the
 * source changes only through the mount, and a warm read should cost no
 * round trip here either.
 *
 * Build: cc -O2 -Wall $(pkg-config --cflags fuse3) bench-ref.c \
 *          $(pkg-config --libs fuse3) -o bench-ref
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 312

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct node {
	struct node *next; /* in its bucket of nodes, under nodes_mu */
	int fd;            /* O_PATH */
	ino_t ino;
	dev_t dev;
	uint64_t lookups;
};

/* Every node but the root, hashed by inode number: a tree of a million
 * files keeps chains short enough that a lookup stays O(1) in practice. */
#define NBUCKETS (1 << 16)
static struct node *buckets[NBUCKETS];
static struct node root;
static pthread_mutex_t nodes_mu = PTHREAD_MUTEX_INITIALIZER;
static double timeout = 1.0;

static struct node *node_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &root : (struct node *)(uintptr_t)ino;
}

static int fd_of(fuse_ino_t ino) { return node_of(ino)->fd; }

/* The path through /proc that reopens or changes an O_PATH descriptor. */
static void proc_path(char *buf, int fd) { sprintf(buf, "/proc/self/fd/%d", fd); }

/* lookup_entry finds NAME in PARENT and counts one more kernel lookup of it. */
static int lookup_entry(fuse_ino_t parent, const char *name, struct fuse_entry_param *e)
{
	struct node *n;
	int fd = openat(fd_of(parent), name, O_PATH | O_NOFOLLOW);

	if (fd < 0)
		return errno;
	memset(e, 0, sizeof(*e));
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int err = errno;
		close(fd);
		return err;
	}
	pthread_mutex_lock(&nodes_mu);
	struct node **bucket = &buckets[e->attr.st_ino % NBUCKETS];
	for (n = *bucket; n; n = n->next)
		if (n->ino == e->attr.st_ino && n->dev == e->attr.st_dev)
			break;
	if (n) {
		close(fd);
	} else {
		n = calloc(1, sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&nodes_mu);
			close(fd);
			return ENOMEM;
		}
		n->fd = fd;
		n->ino = e->attr.st_ino;
		n->dev = e->attr.st_dev;
		n->next = *bucket;
		*bucket = n;
	}
	n->lookups++;
	pthread_mutex_unlock(&nodes_mu);
	e->ino = (uintptr_t)n;
	e->attr_timeout = timeout;
	e->entry_timeout = timeout;
	return 0;
}

static void reply_entry(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int err = lookup_entry(parent, name, &e);

	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void ref_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* As passthrough_ll: no writeback cache, flock handled here. */
	if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
		conn->want |= FUSE_CAP_FLOCK_LOCKS;
	/* As spoolfs (explicit data cache control): the kernel must not drop
	 * a file's pages because its mtime moved, which every write does. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

static void ref_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	reply_entry(req, parent, name);
}

static void forget_one(fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n = node_of(ino);

	if (n == &root)
		return;
	pthread_mutex_lock(&nodes_mu);
	n->lookups -= nlookup;
	if (n->lookups == 0) {
		struct node **p = &buckets[n->ino % NBUCKETS];
		while (*p != n)
			p = &(*p)->next;
		*p = n->next;
		close(n->fd);
		free(n);
	}
	pthread_mutex_unlock(&nodes_mu);
}

static void ref_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(ino, nlookup);
	fuse_reply_none(req);
}

static void ref_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		forget_one(f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void ref_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (fstatat(fd_of(ino), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_attr(req, &st, timeout);
}

static void ref_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
			struct fuse_file_info *fi)
{
	char path[64];
	int fd = fd_of(ino);

	proc_path(path, fd);
	if ((valid & FUSE_SET_ATTR_MODE) && chmod(path, attr->st_mode) < 0)
		goto fail;
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			goto fail;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		int r = fi ? ftruncate(fi->fh, attr->st_size) : truncate(path, attr->st_size);
		if (r < 0)
			goto fail;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		/* A symlink's times cannot be set through /proc; leave them. */
		if (utimensat(AT_FDCWD, path, tv, 0) < 0 && errno != ELOOP)
			goto fail;
	}
	ref_getattr(req, ino, fi);
	return;
fail:
	fuse_reply_err(req, errno);
}

static void ref_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(fd_of(ino), "", buf, sizeof(buf));

	if (n < 0)
		fuse_reply_err(req, errno);
	else if (n == sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[n] = 0;
		fuse_reply_readlink(req, buf);
	}
}

static void ref_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      dev_t rdev)
{
	if (mknodat(fd_of(parent), name, mode, rdev) < 0)
		fuse_reply_err(req, errno);
	else
		reply_entry(req, parent, name);
}

static void ref_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	if (mkdirat(fd_of(parent), name, mode) < 0)
		fuse_reply_err(req, errno);
	else
		reply_entry(req, parent, name);
}

static void ref_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (symlinkat(link, fd_of(parent), name) < 0)
		fuse_reply_err(req, errno);
	else
		reply_entry(req, parent, name);
}

static void ref_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char *name)
{
	if (linkat(fd_of(ino), "", fd_of(parent), name, AT_EMPTY_PATH) < 0)
		fuse_reply_err(req, errno);
	else
		reply_entry(req, parent, name);
}

static void ref_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(fd_of(parent), name, 0) < 0 ? errno : 0);
}

static void ref_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(fd_of(parent), name, AT_REMOVEDIR) < 0 ? errno : 0);
}

static void ref_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	int r = renameat2(fd_of(parent), name, fd_of(newparent), newname, flags);

	fuse_reply_err(req, r < 0 ? errno : 0);
}

static void ref_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char path[64];
	int fd;

	proc_path(path, fd_of(ino));
	fd = open(path, fi->flags & ~O_NOFOLLOW);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fi->fh = fd;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void ref_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int err, fd = openat(fd_of(parent), name, (fi->flags | O_CREAT) & ~O_NOFOLLOW, mode);

	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	err = lookup_entry(parent, name, &e);
	if (err) {
		close(fd);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = fd;
	fi->keep_cache = 1;
	fuse_reply_create(req, &e, fi);
}

static void ref_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ino;
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fi->fh;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void ref_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size,
		      off_t off, struct fuse_file_info *fi)
{
	ssize_t n = pwrite(fi->fh, data, size, off);

	(void)ino;
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, n);
}

static void ref_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	/* close(dup()) reports what a close of the caller's descriptor would. */
	fuse_reply_err(req, close(dup(fi->fh)) < 0 ? errno : 0);
}

static void ref_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	close(fi->fh);
	fuse_reply_err(req, 0);
}

static void ref_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_err(req, (datasync ? fdatasync(fi->fh) : fsync(fi->fh)) < 0 ? errno : 0);
}

static void ref_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int fd = openat(fd_of(ino), ".", O_RDONLY | O_DIRECTORY);
	DIR *dp;

	if (fd < 0 || !(dp = fdopendir(fd))) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)dp;
	fuse_reply_open(req, fi);
}

/* Plain READDIR (no READDIRPLUS): the kernel looks names up itself. */
static void ref_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	DIR *dp = (DIR *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;

	(void)ino;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	seekdir(dp, off);
	for (;;) {
		struct stat st = {0};
		struct dirent *d;
		size_t n;

		errno = 0;
		d = readdir(dp);
		if (!d) {
			if (errno && used == 0) {
				free(buf);
				fuse_reply_err(req, errno);
				return;
			}
			break;
		}
		st.st_ino = d->d_ino;
		st.st_mode = d->d_type << 12;
		n = fuse_add_direntry(req, buf + used, size - used, d->d_name, &st, d->d_off);
		if (n > size - used) {
			break;
		}
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void ref_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	closedir((DIR *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void ref_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;

	if (fstatvfs(fd_of(ino), &st) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &st);
}

static void ref_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	(void)ino;
	fuse_reply_err(req, flock(fi->fh, op) < 0 ? errno : 0);
}

static const struct fuse_lowlevel_ops ops = {
	.init = ref_init,
	.lookup = ref_lookup,
	.forget = ref_forget,
	.forget_multi = ref_forget_multi,
	.getattr = ref_getattr,
	.setattr = ref_setattr,
	.readlink = ref_readlink,
	.mknod = ref_mknod,
	.mkdir = ref_mkdir,
	.symlink = ref_symlink,
	.link = ref_link,
	.unlink = ref_unlink,
	.rmdir = ref_rmdir,
	.rename = ref_rename,
	.open = ref_open,
	.create = ref_create,
	.read = ref_read,
	.write = ref_write,
	.flush = ref_flush,
	.release = ref_release,
	.fsync = ref_fsync,
	.opendir = ref_opendir,
	.readdir = ref_readdir,
	.releasedir = ref_releasedir,
	.statfs = ref_statfs,
	.flock = ref_flock,
};

static void usage(void)
{
	fprintf(stderr, "usage: bench-ref [-s] [-t SECONDS] SOURCE MOUNTPOINT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	char *fuse_argv[] = {argv[0], "-o", "fsname=bench-ref,subtype=bench-ref", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
	struct fuse_session *se;
	int opt, single = 0, ret;

	while ((opt = getopt(argc, argv, "st:")) != -1) {
		if (opt == 's')
			single = 1;
		else if (opt == 't') {
			char *end;
			timeout = strtod(optarg, &end);
			if (*end || timeout < 0)
				usage();
		} else
			usage();
	}
	if (argc - optind != 2)
		usage();
	root.fd = open(argv[optind], O_PATH | O_DIRECTORY);
	if (root.fd < 0) {
		fprintf(stderr, "bench-ref: %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, argv[optind + 1]) != 0)
		return 1;
	if (single) {
		ret = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		ret = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	return ret ? 1 : 0;
}

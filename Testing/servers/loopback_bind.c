/*
 * LD_PRELOAD shim: keep a test server off the network.
 *
 * Orthanc 1.10 has no bind-address option and binds its HTTP server to the wildcard address.
 * This wrapper rewrites bind(INADDR_ANY) to 127.0.0.1 and bind(in6addr_any) to ::1, keeping the
 * port, so the server is reachable from this machine only. Every other bind() passes through.
 * The test fixtures still verify the listening sockets afterwards (/proc), so a shim that failed
 * to load cannot go unnoticed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static bind_fn real_bind = NULL;
    if (real_bind == NULL) {
        real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
        if (real_bind == NULL) {
            errno = ENOSYS;
            return -1;
        }
    }
    if (addr != NULL && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in v4;
        memcpy(&v4, addr, sizeof v4);
        if (v4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&v4, (socklen_t)sizeof v4);
        }
    } else if (addr != NULL && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 v6;
        memcpy(&v6, addr, sizeof v6);
        if (memcmp(&v6.sin6_addr, &in6addr_any, sizeof(struct in6_addr)) == 0) {
            v6.sin6_addr = in6addr_loopback;
            return real_bind(fd, (const struct sockaddr *)&v6, (socklen_t)sizeof v6);
        }
    }
    return real_bind(fd, addr, len);
}

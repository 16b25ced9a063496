/// epoll and eventfd, which Swift's Glibc module does not include; part of the C library, nothing to link.
#include <sys/epoll.h>
#include <sys/eventfd.h>

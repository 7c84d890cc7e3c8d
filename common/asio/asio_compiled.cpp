// Boost.Asio's compiled part. The tree builds Asio with BOOST_ASIO_SEPARATE_COMPILATION (ambient_asio in the
// top-level CMakeLists.txt): its .ipp sources are compiled once, here, and nowhere else.
//
// Before they are, the reactor's per-socket state gets its own home: Asio creates and destroys every
// epoll_reactor::descriptor_state through object_pool_access::create/destroy, and the explicit
// specialisations below put them in reactor_descriptor_slab() instead of the heap (descriptor_slab.h says
// why). They rely on Asio internals of Boost 1.81 exactly: another Boost fails the static_assert, and
// test/common/asio checks that sockets really take their state from the slab.
#include <boost/version.hpp>
static_assert(BOOST_VERSION == 108100, "common/asio/asio_compiled.cpp specialises Boost.Asio 1.81 internals: re-check them");

#include <new>

#include <boost/asio/detail/config.hpp>
#if !defined(BOOST_ASIO_SEPARATE_COMPILATION)
#error "ambient_asio is compiled with BOOST_ASIO_SEPARATE_COMPILATION"
#endif
#include <boost/asio/detail/reactor.hpp>

#include "common/asio/descriptor_slab.h"

#if defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
namespace boost::asio::detail {

template <>
epoll_reactor::descriptor_state* object_pool_access::create<epoll_reactor::descriptor_state, bool>(bool locking) {
  void* slot = ambient::asio_support::reactor_descriptor_slab().allocate();
  return ::new (slot) epoll_reactor::descriptor_state(locking);
}

template <>
void object_pool_access::destroy<epoll_reactor::descriptor_state>(epoll_reactor::descriptor_state* state) {
  state->~descriptor_state();
  ambient::asio_support::reactor_descriptor_slab().release(state);
}

}  // namespace boost::asio::detail

ambient::asio_support::DescriptorSlab& ambient::asio_support::reactor_descriptor_slab() {
  static auto* slab = new DescriptorSlab(sizeof(boost::asio::detail::epoll_reactor::descriptor_state),
                                         alignof(boost::asio::detail::epoll_reactor::descriptor_state));
  return *slab;
}
#else
#error "common/asio/asio_compiled.cpp expects Asio's epoll reactor (Linux)"
#endif

#include <boost/asio/impl/src.hpp>

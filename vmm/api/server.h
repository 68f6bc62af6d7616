// ApiServer: serves the control API on a Unix socket (0600) and/or TCP with TLS, plus an optional
// Prometheus text endpoint. Thread-safe; owns the gRPC server, shares the controller.
//
// An existing socket path: a stale socket (nobody accepts on it) is replaced; a live socket, or
// anything that is not a socket, is ALREADY_EXISTS and left untouched.
#ifndef AMALGAM_VMM_API_SERVER_H_
#define AMALGAM_VMM_API_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "vmm/api/controller.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace amalgam::vmm::api {

class MetricsHttpEndpoint;

struct ApiServerOptions {
  // Unix socket path (the default endpoint); "" = none.
  std::string unix_socket;
  // "host:port" for TCP ("127.0.0.1:0" picks a port); "" = none. Requires TLS files below.
  std::string tcp_address;
  // PEM server certificate chain and private key for TCP.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CA: if set, TCP clients must present a certificate signed by it.
  std::string tls_client_ca_file;
  // "host:port" for Prometheus text metrics over HTTP (GET /metrics); "" = none.
  std::string metrics_address;
};

class ApiServer {
 public:
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Stops accepting calls, cancels calls still running (a Wait) after a short grace period, and
  // removes the socket file. Idempotent; the destructor calls it.
  void Shutdown();
  // Blocks until Shutdown.
  void WaitUntilShutdown();

  VmController& controller() { return *controller_; }
  // The TCP port actually bound (useful with port 0), or 0.
  int tcp_port() const { return tcp_port_; }
  // The Prometheus endpoint's port, or 0.
  int metrics_port() const;

 private:
  friend absl::StatusOr<std::unique_ptr<ApiServer>> StartApiServer(
      const ApiServerOptions& options, std::shared_ptr<VmController> controller);
  ApiServer();

  std::shared_ptr<VmController> controller_;
  // Services outlive the server that calls them (declared first, destroyed last).
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsHttpEndpoint> metrics_;
  std::string socket_path_;
  // Identity of the socket we created, so Shutdown never removes someone else's file.
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
  int tcp_port_ = 0;
  absl::Mutex shutdown_mu_;  // Serializes Shutdown calls.
  absl::Notification shut_down_;
};

// Starts serving. Errors name the option and the fix: no endpoint, TCP without TLS, unreadable
// certificate files, a socket path in use or not a socket, a path too long for a Unix socket.
absl::StatusOr<std::unique_ptr<ApiServer>> StartApiServer(const ApiServerOptions& options,
                                                          std::shared_ptr<VmController> controller);

// Checks a Unix socket path before binding (exported for tests): OK if free (a stale socket is
// removed), ALREADY_EXISTS if something is listening there or it is not a socket.
absl::Status PrepareSocketPath(const std::string& path);

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_SERVER_H_

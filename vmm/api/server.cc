#include "vmm/api/server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "vmm/api/metrics_http.h"
#include "vmm/api/service.h"

namespace amalgam::vmm::api {
namespace {

// How long Shutdown lets running calls finish before cancelling them.
constexpr auto kShutdownGrace = std::chrono::milliseconds(500);
// Upper bound on gRPC server threads (each running call holds one).
constexpr int kMaxServerThreads = 64;

absl::StatusOr<std::string> ReadPemFile(const char* option, const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", option, " \"", path,
                                                   "\": ", std::strerror(errno), "; fix the path"));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  if (buf.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(option, " \"", path, "\" is not PEM; give a PEM-encoded file"));
  }
  return buf.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsCredentials(const ApiServerOptions& o) {
  if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "the API over TCP needs TLS: give both a TLS certificate and key (--api-tls-cert, "
        "--api-tls-key), or use the Unix socket instead");
  }
  absl::StatusOr<std::string> cert = ReadPemFile("TLS certificate", o.tls_cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPemFile("TLS key", o.tls_key_file);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!o.tls_client_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPemFile("TLS client CA", o.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

// Sets the process umask for the lifetime of the object. The socket file is created by gRPC's
// bind(); a restrictive umask makes it 0600 from the first moment, with no window in which
// another user could connect before our chmod.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(umask(mask)) {}
  ~ScopedUmask() { umask(old_); }

 private:
  const mode_t old_;
};

}  // namespace

absl::Status PrepareSocketPath(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("API socket path \"", path, "\" is ", path.size(),
                     " bytes; a Unix socket path must be 1 to ", sizeof(addr.sun_path) - 1,
                     " bytes: choose a shorter --api-socket"));
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the directory \"", dir, "\" of API socket \"", path,
                     "\" does not exist: create it or choose another --api-socket"));
  }
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat("cannot use API socket path \"", path,
                                                      "\": ", std::strerror(errno),
                                                      "; choose another --api-socket"));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::AlreadyExistsError(
        absl::StrCat("API socket path \"", path,
                     "\" exists and is not a socket; amalgam will not remove it: "
                     "delete it yourself or choose another --api-socket"));
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket(): ", std::strerror(errno)));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  close(fd);
  if (rc == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("API socket \"", path,
                     "\" is in use: another server (another amalgam?) accepts "
                     "connections on it; stop it or choose another --api-socket"));
  }
  if (err != ECONNREFUSED) {
    return absl::AlreadyExistsError(
        absl::StrCat("API socket \"", path, "\" exists and cannot be checked (", std::strerror(err),
                     "); remove it or choose another --api-socket"));
  }
  // Nobody listens: a leftover of a process that died. Safe to replace.
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot remove stale API socket \"", path, "\": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ApiServer>> StartApiServer(
    const ApiServerOptions& options, std::shared_ptr<VmController> controller) {
  if (options.unix_socket.empty() && options.tcp_address.empty()) {
    return absl::InvalidArgumentError(
        "no API endpoint: give a Unix socket path (--api-socket) or a TCP address with TLS");
  }
  std::unique_ptr<ApiServer> server(new ApiServer());
  server->controller_ = controller;

  grpc::ServerBuilder builder;
  if (!options.tcp_address.empty()) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = TlsCredentials(options);
    if (!creds.ok()) return creds.status();
    builder.AddListeningPort(options.tcp_address, *creds, &server->tcp_port_);
  }
  if (!options.unix_socket.empty()) {
    if (absl::Status s = PrepareSocketPath(options.unix_socket); !s.ok()) return s;
    builder.AddListeningPort("unix:" + options.unix_socket, grpc::InsecureServerCredentials());
  }
  // Every call holds a server thread while it runs (a Wait may run for hours): bound them, so
  // a flood of clients gets RESOURCE_EXHAUSTED instead of exhausting the process.
  grpc::ResourceQuota quota("amalgam-api");
  quota.SetMaxThreads(kMaxServerThreads);
  builder.SetResourceQuota(quota);
  std::vector<std::unique_ptr<grpc::Service>> services = MakeApiServices(controller);
  for (auto& s : services) builder.RegisterService(s.get());
  {
    ScopedUmask umask(0177);
    server->server_ = builder.BuildAndStart();
  }
  if (server->server_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot start the API server on", options.unix_socket.empty() ? "" : " unix:",
        options.unix_socket, options.tcp_address.empty() ? "" : " tcp:", options.tcp_address,
        "; check that the directory exists and the address is free (gRPC logged the cause)"));
  }
  server->services_ = std::move(services);
  if (!options.unix_socket.empty()) {
    server->socket_path_ = options.unix_socket;
    struct stat st;
    if (chmod(options.unix_socket.c_str(), 0600) != 0 ||
        stat(options.unix_socket.c_str(), &st) != 0) {
      return absl::InternalError(absl::StrCat("cannot restrict API socket \"", options.unix_socket,
                                              "\" to 0600: ", std::strerror(errno)));
    }
    server->socket_dev_ = st.st_dev;
    server->socket_ino_ = st.st_ino;
  }
  if (!options.tcp_address.empty() && server->tcp_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on TCP \"", options.tcp_address,
                                               "\": choose a free host:port"));
  }
  if (!options.metrics_address.empty()) {
    auto metrics = MetricsHttpEndpoint::Start(options.metrics_address, controller);
    if (!metrics.ok()) return metrics.status();
    server->metrics_ = *std::move(metrics);
  }
  return server;
}

ApiServer::ApiServer() = default;
ApiServer::~ApiServer() { Shutdown(); }

int ApiServer::metrics_port() const { return metrics_ ? metrics_->port() : 0; }

void ApiServer::Shutdown() {
  absl::MutexLock lock(&shutdown_mu_);
  metrics_.reset();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
    server_->Wait();
    server_.reset();
  }
  if (!socket_path_.empty()) {
    struct stat st;
    if (lstat(socket_path_.c_str(), &st) == 0 && st.st_dev == socket_dev_ &&
        st.st_ino == socket_ino_) {
      unlink(socket_path_.c_str());
    }
    socket_path_.clear();
  }
  if (!shut_down_.HasBeenNotified()) shut_down_.Notify();
}

void ApiServer::WaitUntilShutdown() { shut_down_.WaitForNotification(); }

}  // namespace amalgam::vmm::api

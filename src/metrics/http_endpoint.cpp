#include "metrics/http_endpoint.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <prometheus/text_serializer.h>

#include <cstring>


namespace ftpsgate::metrics {

namespace {
void respond(evhttp_request* request, int code, const char* reason, const char* content_type,
             const std::string& body) {
  evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", content_type);
  evbuffer* out = evbuffer_new();
  evbuffer_add(out, body.data(), body.size());
  evhttp_send_reply(request, code, reason, out);
  evbuffer_free(out);
}
}  // namespace

std::unique_ptr<HttpEndpoint> HttpEndpoint::create(event_base* base, const HostPort& address, Metrics& metrics,
                                                   std::function<bool()> ready, std::string& error) {
  return create(base, address, metrics.registry(), std::move(ready), error);
}

std::unique_ptr<HttpEndpoint> HttpEndpoint::create(event_base* base, const HostPort& address,
                                                   std::shared_ptr<prometheus::Registry> registry,
                                                   std::function<bool()> ready, std::string& error) {
  const HostPort* hp = &address;
  std::unique_ptr<HttpEndpoint> endpoint(new HttpEndpoint(std::move(registry), std::move(ready)));
  endpoint->http_ = evhttp_new(base);
  if (endpoint->http_ == nullptr || evhttp_bind_socket(endpoint->http_, hp->host.c_str(), hp->port) != 0) {
    error = "cannot serve metrics on " + address.to_string() + ": " + evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
    return nullptr;
  }
  evhttp_set_allowed_methods(endpoint->http_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_max_headers_size(endpoint->http_, 8192);
  evhttp_set_max_body_size(endpoint->http_, 0);
  evhttp_set_timeout(endpoint->http_, 10);
  evhttp_set_gencb(endpoint->http_, &HttpEndpoint::on_request, endpoint.get());
  return endpoint;
}

HttpEndpoint::~HttpEndpoint() {
  if (http_ != nullptr) evhttp_free(http_);
}

void HttpEndpoint::on_request(evhttp_request* request, void* self) {
  auto* endpoint = static_cast<HttpEndpoint*>(self);
  const char* uri = evhttp_request_get_uri(request);
  std::string path = uri == nullptr ? "" : uri;
  path = path.substr(0, path.find('?'));
  if (path == "/metrics") {
    const std::string body = prometheus::TextSerializer().Serialize(endpoint->registry_->Collect());
    respond(request, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
  } else if (path == "/healthz") {
    respond(request, 200, "OK", "text/plain", "ok\n");
  } else if (path == "/readyz") {
    if (endpoint->ready_()) {
      respond(request, 200, "OK", "text/plain", "ready\n");
    } else {
      respond(request, 503, "Service Unavailable", "text/plain", "not ready\n");
    }
  } else {
    respond(request, 404, "Not Found", "text/plain", "not found\n");
  }
}

}  // namespace ftpsgate::metrics

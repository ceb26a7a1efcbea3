# frozen_string_literal: true

require_relative "../../lib/tasker_core/testing/http_stub"

module SpecSupport
  HttpStub = TaskerCore::Testing::HttpStub
end
